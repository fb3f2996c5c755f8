using System.Text.Json;
using SoftPrompt.Engines;
using SoftPrompt.Models;

namespace SoftPrompt.Tests.Cli;

/// <summary>`softprompt bench --plan`: the device memory of a shape, measured without a device or weights.</summary>
public sealed class BenchPlanCommandTests
{
    [TestCase("gpt2-small")]
    [TestCase("t5-small")]
    [TestCase("llama3-8b")]
    public void PrintsTheEnginesOwnPlanByKind(string shape)
    {
        var (code, stdout, stderr) = CliRunner.Run("bench", "--shape", shape, "--plan", "--json", "--batch-size", "4", "--seq-len", "64", "--prompt-length", "20");
        Assert.That(code, Is.Zero, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        long weights = json.GetProperty("weights_bytes").GetInt64(), total = json.GetProperty("total_bytes").GetInt64();
        long parts = weights + json.GetProperty("activations_bytes").GetInt64() + json.GetProperty("workspace_bytes").GetInt64()
            + json.GetProperty("prompt_state_bytes").GetInt64();
        Assert.That(parts, Is.EqualTo(total), "the kinds add up to the total");
        var config = ModelFamily.OfShape(shape)!.Shape(shape)!;
        Assert.That(weights, Is.GreaterThanOrEqualTo(config.ParameterCount * sizeof(float)), "every parameter has its four bytes");
        Assert.That(json.GetProperty("prompt_state_bytes").GetInt64(), Is.GreaterThanOrEqualTo(4L * 20 * config.Embedding * sizeof(float)),
            "prompt, gradient and two optimizer moments");
    }

    [Test]
    public void TheIssuesT5ShapeIsMeasuredAndNamesNoDevice()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench", "--shape", "t5-small", "--plan", "--batch-size", "4", "--seq-len", "20", "--prompt-length", "100", "--targets", "64");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("measured, not allocated").And.Contain("activations").And.Contain("total"));
    }
}
