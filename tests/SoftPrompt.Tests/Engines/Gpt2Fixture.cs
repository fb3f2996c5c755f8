using System.Numerics;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;

namespace SoftPrompt.Tests.Engines;

/// <summary>One PyTorch reference case (tools/reference/gpt2_reference.py): prompts, rows, expected logits, loss and prompt gradient.</summary>
internal sealed class Gpt2Fixture
{
    public static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2");

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (model, caseName) in new[] { ("tiny", "case-a"), ("tiny", "case-b"), ("tiny", "case-c"), ("tiny-prefixed", "case-a"), ("tiny-layer-scaled", "case-a"), ("tiny-unscaled", "case-a") })
            yield return new TestCaseData(model, caseName).SetName($"{{m}}({model}/{caseName})");
    }

    public required string ModelDirectory { get; init; }
    public required float[] Prompts { get; init; }
    public required int PromptCount { get; init; }
    public required int PromptLength { get; init; }
    public required int[][] Inputs { get; init; }
    public required int[][] Targets { get; init; }
    public required int[] PromptIndex { get; init; }
    public required float[] Logits { get; init; }
    public required long[] PositionMask { get; init; }
    public required float Loss { get; init; }
    public required float[] PromptGradient { get; init; }
    public required double LossF64 { get; init; }
    public required double[] PromptGradientF64 { get; init; }

    public static Gpt2Fixture Load(string model, string caseName) => LoadFrom(Path.Combine(Root, model), caseName);

    /// <summary>A case in the decoder-only fixture layout from any model folder (the Llama fixtures share it).</summary>
    public static Gpt2Fixture LoadFrom(string dir, string caseName)
    {
        using var file = SafeTensorFile.Open(Path.Combine(dir, caseName + ".safetensors"));
        var promptShape = file.GetInfo("prompts").Shape;
        int rows = (int)file.GetInfo("prompt_index").Shape[0];
        long[] Longs(string name)
        {
            var values = new long[file.GetInfo(name).ElementCount];
            file.ReadInt64(name, values);
            return values;
        }
        long[] inputIds = Longs("input_ids"), inputLengths = Longs("input_lengths"), targetIds = Longs("target_ids"), targetLengths = Longs("target_lengths");
        int inputStride = (int)file.GetInfo("input_ids").Shape[1], targetStride = (int)file.GetInfo("target_ids").Shape[1];
        return new Gpt2Fixture
        {
            ModelDirectory = dir,
            Prompts = file.Read<float>("prompts"),
            PromptCount = (int)promptShape[0],
            PromptLength = (int)promptShape[1],
            Inputs = Enumerable.Range(0, rows).Select(r => inputIds.Skip(r * inputStride).Take((int)inputLengths[r]).Select(v => (int)v).ToArray()).ToArray(),
            Targets = Enumerable.Range(0, rows).Select(r => targetIds.Skip(r * targetStride).Take((int)targetLengths[r]).Select(v => (int)v).ToArray()).ToArray(),
            PromptIndex = Longs("prompt_index").Select(v => (int)v).ToArray(),
            Logits = file.Read<float>("logits"),
            PositionMask = Longs("position_mask"),
            Loss = file.Read<float>("loss")[0],
            PromptGradient = file.Read<float>("prompt_grad"),
            LossF64 = file.Read<double>("loss_f64")[0],
            PromptGradientF64 = file.Read<double>("prompt_grad_f64"),
        };
    }

    /// <summary>The fixture's rows as a batch (built from the lengths: the fixture pads with −1, TokenBatch with 0).</summary>
    public TokenBatch Batch()
    {
        int longest = Inputs.Zip(Targets, (i, t) => i.Length + t.Length).Max();
        var batch = new TokenBatch(Inputs.Length, longest, PromptLength);
        batch.Reset(longest);
        for (int r = 0; r < Inputs.Length; r++) batch.AddRow(Inputs[r], Targets[r], PromptIndex[r]);
        return batch;
    }

    /// <summary>
    /// Loads this case's prompts into <paramref name="engine"/> and checks it against PyTorch: the logits at real
    /// positions within 1e-4 (read through <paramref name="logits"/>, the engine's full-logits method), the loss and the
    /// prompt gradient within the given relative errors.
    /// </summary>
    public void AssertEngineMatches(IPromptEngine engine, Action<TokenBatch, float[]> logits, double lossTolerance, double gradientTolerance)
    {
        engine.LoadPrompts(Prompts, PromptCount, PromptLength);
        var batch = Batch();
        var actual = new float[Logits.Length];
        logits(batch, actual);
        double worstLogit = 0;
        int vocab = engine.VocabSize;
        for (int position = 0; position < PositionMask.Length; position++)
        {
            if (PositionMask[position] == 0) continue;
            for (int v = 0; v < vocab; v++)
                worstLogit = Math.Max(worstLogit, Math.Abs(actual[position * vocab + v] - Logits[position * vocab + v]));
        }
        Assert.That(worstLogit, Is.LessThan(1e-4), "max |logit − PyTorch| over real positions");

        float loss = engine.ForwardBackward(batch);
        Assert.That(Math.Abs(loss - Loss) / Math.Abs(Loss), Is.LessThanOrEqualTo(lossTolerance), "loss relative error");
        var gradient = new float[PromptGradient.Length];
        engine.ReadPromptGradient(gradient);
        Assert.That(RelativeError<float>(gradient, PromptGradient), Is.LessThanOrEqualTo(gradientTolerance), "prompt gradient relative error");
    }

    /// <summary>max |actual − expected| / max |expected|: a relative error that tiny entries cannot inflate.</summary>
    public static double RelativeError<T>(ReadOnlySpan<T> actual, ReadOnlySpan<T> expected) where T : IBinaryFloatingPointIeee754<T>
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length));
        double worst = 0, scale = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(double.CreateChecked(actual[i] - expected[i])));
            scale = Math.Max(scale, Math.Abs(double.CreateChecked(expected[i])));
        }
        return worst / scale;
    }
}
