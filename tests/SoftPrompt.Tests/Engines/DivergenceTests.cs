using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// Issue 14 item 2: an optimizer step that writes NaN or infinity into the prompt or its optimizer state stops the run. The
/// CPU engine checks right after the step; the device engine counts on the device (no sync per step) and reports the
/// count with the next loss it reads — the step after — naming the step that diverged.
/// </summary>
[TestFixture("cpu")]
[TestFixture("cuda-emulated")]
[TestFixture("cuda", Category = "Gpu")]
public sealed class DivergenceTests(string device)
{
    private static readonly Gpt2Config Config = TestModels.TinyConfig(vocab: 41, positions: 24, embedding: 32, layers: 2, heads: 4, inner: 64);

    private IPromptEngine Open()
    {
        var weights = TestModels.Random<float>(Config, seed: 4);
        return device switch
        {
            "cpu" => new CpuGpt2Engine<float>(weights),
            "cuda-emulated" => new CudaGpt2Engine(TestDevices.Open(DeviceKind.Emulated), weights, ownsDevice: true),
            _ => new CudaGpt2Engine(TestDevices.Open(DeviceKind.Gpu), weights, ownsDevice: true),
        };
    }

    [Test]
    public void AStepThatOverflowsThePromptIsReportedNamingTheStep()
    {
        using var engine = Open();
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 4 * Config.Embedding, seed: 5), 2, 4);
        var batch = TestModels.MixedBatch(4, 2, Config.VocabSize);
        var sgd = new OptimizerSettings(OptimizerKind.Sgd);
        engine.ForwardBackward(batch);
        engine.OptimizerStep(sgd, 1, 1e-2f);
        engine.ForwardBackward(batch);

        void Overflow() => engine.OptimizerStep(sgd, 2, float.MaxValue, gradientScale: float.MaxValue);
        if (device == "cpu")
        {
            Assert.That(Overflow, Throws.InvalidOperationException.With.Message.Contains("optimizer step 2 wrote").And.Message.Contains("`TrainOptions.LearningRate`"));
            return;
        }
        Overflow(); // queued: nothing waits for the device here
        Assert.That(() => engine.ForwardBackward(batch), Throws.InvalidOperationException.With.Message.Contains("optimizer step 2 wrote"));
    }

    [Test]
    public void FiniteStepsAreNeverReported()
    {
        using var engine = Open();
        engine.LoadPrompts(TestModels.RandomPrompts<float>(2 * 4 * Config.Embedding, seed: 5), 2, 4);
        var batch = TestModels.MixedBatch(4, 2, Config.VocabSize);
        foreach (var kind in new[] { OptimizerKind.Sgd, OptimizerKind.AdamW, OptimizerKind.Adafactor })
            for (int step = 1; step <= 3; step++)
            {
                engine.ForwardBackward(batch);
                engine.OptimizerStep(new OptimizerSettings(kind), step, 0.1f);
            }
        Assert.That(() => engine.ForwardBackward(batch), Throws.Nothing);
    }
}
