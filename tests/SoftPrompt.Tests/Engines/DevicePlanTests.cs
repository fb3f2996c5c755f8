using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// Every named benchmark shape's device memory, measured without a device at the README's benchmark settings and at awkward
/// ones: every tensor lies inside its arena, aligned, and no two overlap; the weights arena holds the config's parameters.
/// </summary>
public sealed class DevicePlanTests
{
    public static IEnumerable<TestCaseData> Shapes()
    {
        foreach (var family in ModelFamily.All)
            foreach (string name in family.ShapeNames) yield return new TestCaseData(name, family.Shape(name)).SetArgDisplayNames(name);
    }

    /// <summary>(rows, prompt lengths, input tokens, targets per row): the README's bench shape, many targets, T = 1, P = 0, prompts of different lengths.</summary>
    private static readonly (int Rows, int[] Prompts, int Inputs, int Targets)[] Settings =
    [
        (16, [100], 1, 255),
        (16, [100], 224, 32),
        (4, [100], 20, 64),
        (3, [20], 0, 1),
        (5, [0], 40, 7),
        (7, [3, 100, 17, 0], 50, 9),
        (64, [100], 200, 256),
    ];

    [TestCaseSource(nameof(Shapes))]
    public void EveryTensorLiesInsideItsArenaWithoutOverlap(string name, IModelConfig config)
    {
        foreach (var (rows, prompts, inputs, targets) in Settings)
        foreach (var recomputation in new[] { Recomputation.Off, Recomputation.PerLayer })
        {
            var layout = new PromptLayout(prompts);
            var batch = Batch(config, layout, rows, inputs, targets);
            var plan = DeviceMemoryPlan.Measure(config, batch, layout, Precision.Fp32, recomputation);
            string where = $"{name}, {rows} rows, prompts [{string.Join(", ", prompts)}], {inputs} inputs, {targets} targets, recomputation {recomputation}";
            Assert.That(plan.Recomputes, Is.EqualTo(recomputation == Recomputation.PerLayer), where);
            foreach (var arena in plan.Arenas) CheckArena(arena, where);
            Assert.That(plan.BytesOf(DeviceMemoryKind.Activations) + plan.BytesOf(DeviceMemoryKind.Workspace), Is.GreaterThan(0), where);
            Assert.That(plan.TotalBytes, Is.EqualTo(Enum.GetValues<DeviceMemoryKind>().Sum(plan.BytesOf)), $"{where}: every byte has a kind");
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void TheWeightsArenaHoldsTheConfigsParameters(string name, IModelConfig config)
    {
        var batch = Batch(config, new PromptLayout([4]), 1, 2, 1);
        var weights = DeviceMemoryPlan.Measure(config, batch, new PromptLayout([4])).Arenas[0];
        long parameters = config.ParameterCount * sizeof(float);
        long ropeTables = config is LlamaConfig llama ? 2L * llama.SequenceLimit * (llama.HeadSize / 2) * sizeof(float) : 0;
        long padding = weights.Tensors.Count * (long)DeviceArena.Alignment;
        Assert.That(weights.BytesOf(DeviceMemoryKind.Weights), Is.EqualTo(weights.Bytes), name);
        Assert.That(weights.Bytes, Is.InRange(parameters + ropeTables, parameters + ropeTables + padding), name);
    }

    [Test]
    public void TheIssuesT5ShapeFitsAndWouldNotFitTheOldFormula()
    {
        // bench --shape t5-small --batch-size 4 --seq-len 20 --prompt-length 100 --targets 64 overflowed the hand-counted T5 plan.
        var config = T5Shapes.Named["t5-small"];
        var layout = new PromptLayout([100]);
        var plan = DeviceMemoryPlan.Measure(config, Batch(config, layout, 4, 20, 64), layout);
        var t5 = plan.Arenas[1];
        var decoderLayer = t5.Tensors.Where(t => t.Name.StartsWith("decoder.block.0.", StringComparison.Ordinal)).ToList();
        long nd = 4L * 64, a = config.AttentionSize;
        Assert.That(decoderLayer.Count(t => t.Bytes == nd * a * sizeof(float)), Is.EqualTo(3), "self-attention's output, cross-attention's q and output");
        Assert.That(decoderLayer.Count(t => t.Bytes == nd * 3 * a * sizeof(float)), Is.EqualTo(1), "self-attention's q, k, v (one GEMM's output)");
    }

    private static TokenBatch Batch(IModelConfig config, PromptLayout layout, int rows, int inputs, int targets)
    {
        var batch = new TokenBatch(rows, inputs + targets, layout);
        batch.Reset(inputs + targets);
        var input = Enumerable.Range(0, inputs).Select(i => i % config.VocabSize).ToArray();
        var target = Enumerable.Range(0, targets).Select(i => (i * 7) % config.VocabSize).ToArray();
        for (int r = 0; r < rows; r++) batch.AddRow(input, target, r % layout.Count);
        return batch;
    }

    private static void CheckArena(DeviceArena arena, string where)
    {
        long end = 0;
        foreach (var t in arena.Tensors)
        {
            string tensor = $"{where}: {arena.Name} tensor '{t.Name}' [{t.Offset}, {t.Offset + t.Bytes})";
            Assert.That(t.Offset % DeviceArena.Alignment, Is.Zero, $"{tensor} is not aligned");
            Assert.That(t.Offset, Is.GreaterThanOrEqualTo(end), $"{tensor} overlaps the tensor before it");
            Assert.That(t.Offset + t.Bytes, Is.LessThanOrEqualTo(arena.Bytes), $"{tensor} ends outside the arena of {arena.Bytes} bytes");
            Assert.That(t.Bytes, Is.GreaterThanOrEqualTo(0), tensor);
            end = t.Offset + t.Bytes;
        }
    }
}
