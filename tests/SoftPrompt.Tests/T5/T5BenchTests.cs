using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Cli;

namespace SoftPrompt.Tests.T5;

/// <summary>The named T5 shapes and `softprompt bench --shape t5-*`.</summary>
public sealed class T5BenchTests : CliScratch
{
    // model.num_parameters() of google/t5-v1_1-{small,base,large,xl} in transformers: a check of every shape field.
    [TestCase("t5-small", 76_961_152L)]
    [TestCase("t5-base", 247_577_856L)]
    [TestCase("t5-large", 783_150_080L)]
    [TestCase("t5-xl", 2_849_757_184L)]
    public void ShapesHaveTheParameterCountsOfTheV1_1Checkpoints(string name, long parameters)
    {
        var config = T5Shapes.Named[name];
        Assert.That(config.ParameterCount, Is.EqualTo(parameters));
        Assert.That((config.IsGated, config.TiedEmbeddings, config.HeadSize, config.RelativeBuckets, config.RelativeMaxDistance, config.VocabSize),
            Is.EqualTo((true, false, 64, 32, 128, 32128)));
        config.Validate(name);
    }

    [Category("Slow")]
    [Test]
    public void BenchRunsAT5ShapeOnTheCpuWithEncoderTokensAndDecoderTargets()
    {
        var (code, stdout, stderr) = CliRunner.Run("bench", "--shape", "t5-small", "--device", "cpu", "--batch-size", "1", "--seq-len", "6",
            "--prompt-length", "2", "--targets", "3", "--steps", "1", "--warmup", "0", "--json");
        Assert.That(code, Is.EqualTo(0), stderr);
        var json = ParseJson(stdout);
        Assert.That(json.GetProperty("family").GetString(), Is.EqualTo("t5"));
        Assert.That(json.GetProperty("seq_len").GetInt32(), Is.EqualTo(6));
        Assert.That(json.GetProperty("targets_per_row").GetInt32(), Is.EqualTo(3));
        Assert.That(json.GetProperty("loss").GetDouble(), Is.GreaterThan(0).And.LessThan(double.PositiveInfinity));
        // Its throughput figures are the shape's FLOP and token counts over the measured time, encoder P + T, decoder = targets.
        double seconds = json.GetProperty("ms_per_step").GetDouble() / 1000;
        double flops = T5Shapes.Named["t5-small"].TrainingStepFlops(rows: 1, encoderPositions: 2 + 6, decoderPositions: 3, targets: 3);
        Assert.That(json.GetProperty("tflops").GetDouble() * 1e12 * seconds, Is.EqualTo(flops).Within(1e-9).Percent);
        Assert.That(json.GetProperty("tokens_per_second").GetDouble() * seconds, Is.EqualTo(1 * (2 + 6 + 3)).Within(1e-9).Percent);

        (code, stdout, stderr) = CliRunner.Run("bench", "--shape", "t5-small", "--device", "cpu", "--batch-size", "1", "--seq-len", "2",
            "--prompt-length", "1", "--steps", "1", "--warmup", "0");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("encoder: prompt 1 + 2 tokens; decoder: 32 targets"), "the default decoder length");
    }

    [Test]
    public void T5ShapesOnCudaWithoutAGpuFailBeforeBuildingWeights()
    {
        if (EngineFactory.DefaultDevice == "cuda") Assert.Ignore("A GPU is present: t5-xl would really run.");
        var (code, _, stderr) = CliRunner.Run("bench", "--shape", "t5-xl", "--device", "cuda");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("--device cuda:"));
    }

    [Test]
    public void AShapeTooLargeForTheHostIsRefusedBeforeItsWeightsAreBuilt()
    {
        long needed = T5Shapes.Named["t5-xxl"].ParameterCount * sizeof(float);
        if (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes > needed) Assert.Ignore("This machine could hold t5-xxl's fp32 weights.");
        var (code, _, stderr) = CliRunner.Run("bench", "--shape", "t5-xxl", "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("needs 41 GiB of host memory").And.Contain("--shape"));
    }

    [Test]
    public void UnknownShapesListEveryName()
    {
        var (code, _, stderr) = CliRunner.Run("bench", "--shape", "t5-xxxl", "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("gpt2-small").And.Contain("t5-small").And.Contain("t5-xl"));
    }

    [Test]
    public void FlopsSplitEncoderAndDecoderPositions()
    {
        var c = T5Shapes.Named["t5-base"];
        // The contract's layout (targets at the end of each row) and the explicit split count the same work.
        Assert.That(c.TrainingStepFlops(4, 100 + 32, 4L * 32), Is.EqualTo(c.TrainingStepFlops(4, 100, 32, 4L * 32)).Within(1e-9).Percent);
        Assert.That(c.TrainingStepFlops(4, 200, 32, 128), Is.GreaterThan(c.TrainingStepFlops(4, 100, 32, 128)));
    }
}
