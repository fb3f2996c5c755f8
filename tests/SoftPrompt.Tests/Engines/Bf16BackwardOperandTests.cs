using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;
using SoftPrompt.Tests.T5;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// The bf16 reverse passes make their GEMM operands in the kernels that produce them (issue 12): each norm backward rounds
/// the updated residual gradient for the GEMM that reads it next, and the decoder-only families' shared-row reductions
/// write q's, k's and v's gradients in bf16. GPT-2 and Llama then have no convert_to_bf16 pass in a step; T5 one per
/// attention (its q, k, v gradients come straight from the attention kernel in fp32: self-attention's one [n, 3a] tensor
/// for its one input-gradient GEMM, cross-attention's q and its k|v). With and without recomputation. Llama hs64 reads the
/// kv groups in place (narrow k/v gradients from the kernel); tiny-attention-bias (head size 8) repeats and sums them around it.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16BackwardOperandTests(DeviceKind kind)
{
    [TestCase(Recomputation.Off)]
    [TestCase(Recomputation.PerLayer)]
    public void Gpt2ConvertsNoOperand(Recomputation recomputation)
    {
        string dir = FixtureDirectory("gpt2/tiny");
        var fixture = Gpt2Fixture.LoadFrom(dir, "case-a");
        var weights = Gpt2Checkpoint.Load<float>(dir);
        int layers = weights.Config.Layers;
        var calls = ProfiledStep(device => new CudaGpt2Engine(device, weights, ownsDevice: true, bf16: true) { Recomputation = recomputation },
            fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
        Assert.That(calls.GetValueOrDefault("convert_to_bf16"), Is.Zero, "no fp32 operand is rounded by a pass of its own");
        Assert.That(calls.GetValueOrDefault("layernorm_backward_bf16"), Is.EqualTo(2 * layers),
            "ln_2 of every layer, ln_1 of every layer but the first (whose gradient goes to the embeddings), and ln_f");
        Assert.That(calls.GetValueOrDefault("layernorm_backward"), Is.EqualTo(1), "layer 0's ln_1");
        Assert.That(calls.GetValueOrDefault("gather_sum_rows_bf16"), Is.EqualTo(layers), "q|k|v's gradient, once per layer");
    }

    [TestCase("bf16/llama-hs64", Recomputation.Off)]
    [TestCase("bf16/llama-hs64", Recomputation.PerLayer)]
    [TestCase("llama/tiny-attention-bias", Recomputation.Off)]
    [TestCase("llama/tiny-attention-bias", Recomputation.PerLayer)]
    public void LlamaConvertsNoOperand(string model, Recomputation recomputation)
    {
        string dir = FixtureDirectory(model);
        var fixture = Gpt2Fixture.LoadFrom(dir, "case-a");
        var weights = LlamaCheckpoint.Load<float>(dir);
        int layers = weights.Config.Layers;
        var calls = ProfiledStep(device => new CudaLlamaEngine(device, weights, ownsDevice: true, bf16: true) { Recomputation = recomputation },
            fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
        Assert.That(calls.GetValueOrDefault("convert_to_bf16"), Is.Zero, "no fp32 operand is rounded by a pass of its own");
        Assert.That(calls.GetValueOrDefault("rmsnorm_backward_bf16"), Is.EqualTo(2 * layers),
            "post_attention_layernorm of every layer, input_layernorm of every layer but the first (whose gradient goes to the embeddings), and the final norm");
        Assert.That(calls.GetValueOrDefault("rmsnorm_backward"), Is.EqualTo(1), "layer 0's input_layernorm");
        Assert.That(calls.GetValueOrDefault("gather_sum_rows_bf16"), Is.EqualTo(3 * layers), "q's, k's and v's gradients, once each per layer");
    }

    [TestCase("bf16/t5-hs64", Recomputation.Off)]
    [TestCase("bf16/t5-hs64", Recomputation.PerLayer)]
    [TestCase("t5/v1_0", Recomputation.Off)]
    public void T5ConvertsOnlyTheAttentionGradients(string model, Recomputation recomputation)
    {
        string dir = FixtureDirectory(model);
        var fixture = T5Fixture.LoadFrom(dir, "case-a");
        var weights = T5Checkpoint.Load<float>(dir);
        int encoderLayers = weights.Config.Layers, decoderLayers = weights.Config.DecoderLayers;
        var calls = ProfiledStep(device => new CudaT5Engine(device, weights, ownsDevice: true, bf16: true) { Recomputation = recomputation },
            fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
        Assert.That(calls.GetValueOrDefault("convert_to_bf16"), Is.EqualTo(encoderLayers + 3 * decoderLayers),
            "one per self-attention (q|k|v's gradient) and two per cross-attention (q's, then k|v's): the residual gradients are rounded by the norms");
        Assert.That(calls.GetValueOrDefault("rmsnorm_backward_bf16"), Is.EqualTo(2 * encoderLayers + 3 * decoderLayers + 2),
            "every layer norm of both stacks and both final norms");
        Assert.That(calls.GetValueOrDefault("rmsnorm_backward"), Is.Zero, "no fp32-only norm backward");
    }

    private static string FixtureDirectory(string model) => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", model);

    /// <summary>Launches per label of one profiled training step (the plan allocated by a step before it).</summary>
    private Dictionary<string, double> ProfiledStep(Func<IComputeDevice, DeviceEngine> open, float[] prompts, int promptCount, int promptLength, TokenBatch batch)
    {
        var device = TestDevices.Open(kind);
        using var engine = open(device);
        engine.LoadPrompts(prompts, promptCount, promptLength);
        engine.ForwardBackward(batch);
        var profiler = device.StartProfiling();
        try
        {
            engine.ForwardBackward(batch);
            return profiler.Read().Ops.ToDictionary(o => o.Label, o => o.Calls);
        }
        finally
        {
            device.StopProfiling();
        }
    }
}
