using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;

namespace SoftPrompt.Tests.T5;

/// <summary>One PyTorch reference case (tools/reference/t5_reference.py): prompts, rows, expected decoder logits, loss and prompt gradient.</summary>
internal sealed class T5Fixture
{
    public static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "t5");

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (model, caseName) in new[] { ("v1_0", "case-a"), ("v1_0", "case-b"), ("v1_0", "case-c"), ("v1_1", "case-a"), ("v1_1", "case-b"), ("mt5", "case-a") })
            yield return new TestCaseData(model, caseName).SetName($"{{m}}({model}/{caseName})");
    }

    public required string ModelDirectory { get; init; }
    public required float[] Prompts { get; init; }
    public required int PromptCount { get; init; }
    public required int PromptLength { get; init; }
    public required int[][] Inputs { get; init; }
    public required int[][] Targets { get; init; }
    public required int[] PromptIndex { get; init; }
    public required int DecoderLength { get; init; }
    /// <summary>[B, Tdec, V] and [B, Tdec]: compare logits where the mask is 1.</summary>
    public required float[] Logits { get; init; }
    public required double[] LogitsF64 { get; init; }
    public required long[] DecoderMask { get; init; }
    public required float Loss { get; init; }
    public required float[] PromptGradient { get; init; }
    public required double LossF64 { get; init; }
    public required double[] PromptGradientF64 { get; init; }

    public static T5Fixture Load(string model, string caseName) => LoadFrom(Path.Combine(Root, model), caseName);

    /// <summary>A case from any folder in the fixture layout (a copy of a fixture with another config.json, say).</summary>
    public static T5Fixture LoadFrom(string dir, string caseName)
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
        int[][] Rows(string ids, string lengths)
        {
            long[] values = Longs(ids), count = Longs(lengths);
            int stride = (int)file.GetInfo(ids).Shape[1];
            return Enumerable.Range(0, rows).Select(r => values.Skip(r * stride).Take((int)count[r]).Select(v => (int)v).ToArray()).ToArray();
        }
        return new T5Fixture
        {
            ModelDirectory = dir,
            Prompts = file.Read<float>("prompts"),
            PromptCount = (int)promptShape[0],
            PromptLength = (int)promptShape[1],
            Inputs = Rows("input_ids", "input_lengths"),
            Targets = Rows("target_ids", "target_lengths"),
            PromptIndex = Longs("prompt_index").Select(v => (int)v).ToArray(),
            DecoderLength = (int)file.GetInfo("decoder_mask").Shape[1],
            Logits = file.Read<float>("logits"),
            LogitsF64 = file.Read<double>("logits_f64"),
            DecoderMask = Longs("decoder_mask"),
            Loss = file.Read<float>("loss")[0],
            PromptGradient = file.Read<float>("prompt_grad"),
            LossF64 = file.Read<double>("loss_f64")[0],
            PromptGradientF64 = file.Read<double>("prompt_grad_f64"),
        };
    }

    /// <summary>The fixture's rows as a batch: input tokens feed the encoder, targets the decoder.</summary>
    public TokenBatch Batch()
    {
        int longest = Inputs.Zip(Targets, (i, t) => i.Length + t.Length).Max();
        var batch = new TokenBatch(Inputs.Length, longest, PromptLength);
        batch.Reset(longest);
        for (int r = 0; r < Inputs.Length; r++) batch.AddRow(Inputs[r], Targets[r], PromptIndex[r]);
        return batch;
    }

    /// <summary>max |actual − expected| over the decoder positions that predict a target.</summary>
    public double WorstLogitError<T>(ReadOnlySpan<T> actual, ReadOnlySpan<T> expected, int vocab) where T : System.Numerics.IBinaryFloatingPointIeee754<T>
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), "logits shape [B, Tdec, V]");
        double worst = 0;
        for (int position = 0; position < DecoderMask.Length; position++)
        {
            if (DecoderMask[position] == 0) continue;
            for (int v = 0; v < vocab; v++)
                worst = Math.Max(worst, Math.Abs(double.CreateChecked(actual[position * vocab + v] - expected[position * vocab + v])));
        }
        return worst;
    }

    /// <summary>max |actual − expected| / max |expected|: a relative error that tiny entries cannot inflate.</summary>
    public static double RelativeError<T>(ReadOnlySpan<T> actual, ReadOnlySpan<T> expected) where T : System.Numerics.IBinaryFloatingPointIeee754<T>
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
