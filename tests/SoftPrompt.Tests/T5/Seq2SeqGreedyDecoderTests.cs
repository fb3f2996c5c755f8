using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.T5;

public sealed class Seq2SeqGreedyDecoderTests
{
    private static CpuT5Engine<float> Engine(out int width)
    {
        var weights = T5Checkpoint.Load<float>(Path.Combine(T5Fixture.Root, "v1_1"));
        width = weights.Config.Embedding;
        var engine = new CpuT5Engine<float>(weights);
        var random = new Random(5);
        engine.LoadPrompts(Enumerable.Range(0, 3 * width).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), 1, 3);
        return engine;
    }

    private static readonly int[][] Inputs = [[5, 9, 12, 40], [], [7], [33, 2, 60, 18, 1, 4, 4]];

    [Test]
    public void EachDecodedTokenIsTheTeacherForcedArgmaxBehindTheOnesBeforeIt()
    {
        using var engine = Engine(out _);
        var decoded = Seq2SeqGreedyDecoder.Generate(engine, Inputs, maxNewTokens: 5, stopToken: null, batchSize: 3);
        Assert.That(decoded.Select(d => d.Length), Is.All.EqualTo(5));
        for (int r = 0; r < Inputs.Length; r++)
        {
            var batch = new TokenBatch(1, Inputs[r].Length + 5, 3);
            batch.Reset(Inputs[r].Length + 5);
            batch.AddRow(Inputs[r], decoded[r]);
            var matches = new int[1];
            engine.ScoreRows(batch, new float[1], matches);
            Assert.That(matches[0], Is.EqualTo(5), $"row {r}: every generated token is the argmax of its teacher-forced logits");
        }
        var alone = Inputs.Select(i => Seq2SeqGreedyDecoder.Generate(engine, [i], 5, null)[0]);
        Assert.That(decoded, Is.EqualTo(alone), "rows of unequal length decode in one batch as they do alone");
    }

    [Test]
    public void DecodingStopsAtTheStopTokenAndKeepsIt()
    {
        using var engine = Engine(out _);
        var free = Seq2SeqGreedyDecoder.Generate(engine, Inputs, maxNewTokens: 6, stopToken: null);
        int stop = free[0][2];
        var stopped = Seq2SeqGreedyDecoder.Generate(engine, Inputs, maxNewTokens: 6, stopToken: stop);
        for (int r = 0; r < Inputs.Length; r++)
        {
            int at = Array.IndexOf(free[r], stop);
            Assert.That(stopped[r], Is.EqualTo(at >= 0 ? free[r][..(at + 1)] : free[r]), $"row {r}");
        }
        Assert.That(stopped[0], Has.Length.EqualTo(Array.IndexOf(free[0], stop) + 1));
    }

    /// <summary>The CUDA engine decides each step's token on the device (DecoderNextTokens); the answers are the CPU engine's.</summary>
    [Test]
    public void TheDeviceEngineDecodesWhatTheCpuEngineDecodes()
    {
        if (!SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        using var cpu = Engine(out int width);
        var weights = T5Checkpoint.Load<float>(Path.Combine(T5Fixture.Root, "v1_1"));
        using var cuda = new CudaT5Engine(new SoftPrompt.Cuda.Emulation.EmulatedDevice(), weights, ownsDevice: true);
        var prompt = new float[3 * width];
        cpu.ReadPrompts(prompt);
        cuda.LoadPrompts(prompt, 1, 3);
        var expected = Seq2SeqGreedyDecoder.Generate(cpu, Inputs, maxNewTokens: 5, stopToken: null, batchSize: 3);
        var actual = Seq2SeqGreedyDecoder.Generate(cuda, Inputs, maxNewTokens: 5, stopToken: null, batchSize: 3);
        Assert.That(actual, Is.EqualTo(expected));
    }
}
