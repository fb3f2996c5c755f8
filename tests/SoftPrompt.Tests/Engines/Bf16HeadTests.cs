using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// The LM head in bf16 precision: a bf16 head weight (tied: a bf16 copy beside the fp32 embedding table; untied: lm_head
/// stored only in bf16, with zero rows up to the logit stride) multiplied on bf16 operands, and logit rows padded to a multiple of 64.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16HeadTests(DeviceKind kind)
{
    /// <summary>
    /// With ln_f's weight zero every position's final norm output is ln_f's bias b exactly, whatever the blocks did, so
    /// every logit row is b·Wᵀ: in bf16 precision Σ bf16(b)·bf16(W) (exact products, fp32 sums), which differs from the fp32
    /// head's b·Wᵀ by far more than the tolerance — the test fails if the engine's head silently stays fp32.
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public void TheBf16Gpt2EngineRunsItsHeadOnBf16Operands(bool tied)
    {
        var config = TestModels.TinyConfig(vocab: 37, positions: 24, embedding: 32, layers: 2, heads: 4, inner: 64) with { TiedEmbeddings = tied };
        var random = TestModels.Random<float>(config, seed: 5);
        var rng = new Random(9);
        float[] bias = [.. Enumerable.Range(0, config.Embedding).Select(_ => (float)(rng.NextDouble() - 0.5))];
        var weights = new Gpt2Weights<float>
        {
            Config = config, TokenEmbedding = random.TokenEmbedding, PositionEmbedding = random.PositionEmbedding, Layers = random.Layers,
            FinalNormWeight = new float[config.Embedding], FinalNormBias = bias,
            LanguageModelHead = tied ? null : [.. random.TokenEmbedding.Select(v => -0.7f * v + 0.01f)],
        };
        int vocab = config.VocabSize, d = config.Embedding;
        double[] bf16Row = new double[vocab], fp32Row = new double[vocab];
        for (int v = 0; v < vocab; v++)
            for (int k = 0; k < d; k++)
            {
                float w = weights.Head[v * d + k];
                bf16Row[v] += (double)Bf16(bias[k]) * Bf16(w);
                fp32Row[v] += (double)bias[k] * w;
            }
        double largest = bf16Row.Max(Math.Abs), tolerance = 1e-6 + 1e-5 * largest;
        Assert.That(bf16Row.Zip(fp32Row, (a, b) => Math.Abs(a - b)).Max(), Is.GreaterThan(20 * tolerance), "the fixture tells a bf16 head from an fp32 one");

        using var engine = new CudaGpt2Engine(TestDevices.Open(kind), weights, ownsDevice: true, bf16: true);
        const int promptLength = 3, prompts = 2;
        engine.LoadPrompts(TestModels.RandomPrompts<float>(prompts * promptLength * d, seed: 2), prompts, promptLength);
        var batch = TestModels.MixedBatch(promptLength, prompts, vocab);

        var next = new float[batch.Rows * vocab];
        engine.NextTokenLogits(batch, next);
        for (int r = 0; r < batch.Rows; r++) AssertRow(next.AsSpan(r * vocab, vocab), bf16Row, tolerance, $"next-token logits of row {r}");

        var all = new float[batch.Rows * batch.SequenceLength * vocab];
        engine.Logits(batch, all);
        for (int i = 0; i < batch.Rows * batch.SequenceLength; i++) AssertRow(all.AsSpan(i * vocab, vocab), bf16Row, tolerance, $"logits at position {i}");

        // Every target sees the same logits: the mean loss is the mean of lse − logit[target] over the batch's targets.
        double lse = Math.Log(bf16Row.Sum(Math.Exp)), loss = 0;
        int targets = 0;
        foreach (int t in batch.Targets.AsSpan(0, batch.Rows * batch.SequenceLength))
            if (t != TokenBatch.Ignore) { loss += lse - bf16Row[t]; targets++; }
        Assert.That(targets, Is.EqualTo(batch.TargetCount));
        loss /= targets;
        Assert.That(engine.Forward(batch), Is.EqualTo(loss).Within(1e-5 * Math.Abs(loss) + 1e-6), "the loss of the bf16 logits");
        Assert.That(engine.ForwardBackward(batch), Is.EqualTo(loss).Within(1e-5 * Math.Abs(loss) + 1e-6), "the loss with the bf16 d(logits)");
    }

    private static float Bf16(float x) => BitConverter.Int32BitsToSingle(ElementConversion.SingleToBFloat16(x) << 16);

    private static void AssertRow(ReadOnlySpan<float> actual, double[] expected, double tolerance, string what)
    {
        for (int v = 0; v < expected.Length; v++)
            if (!(Math.Abs(actual[v] - expected[v]) <= tolerance))
                Assert.Fail($"{what}, token {v}: {actual[v]:R}, expected the bf16 head's {expected[v]:R} (tolerance {tolerance:G3}).");
    }

    [Test]
    public void InBf16PrecisionTheHeadWeightIsBf16AndTheLogitRowsAreAligned()
    {
        // GPT-2 (tied, V = 50257 odd): the fp32 wte stays for the lookup, the head gets a bf16 copy; fp32 has no copy.
        var gpt2 = Gpt2Shapes.Named["gpt2-small"];
        var gpt2Layout = PromptLayout.Uniform(1, 20);
        var gpt2Batch = new TokenBatch(4, 128, 20);
        gpt2Batch.Reset(128);
        for (int r = 0; r < 4; r++) gpt2Batch.AddRow(new int[100], new int[28]);
        var fp32 = DeviceMemoryPlan.Measure(gpt2, gpt2Batch, gpt2Layout);
        var bf16 = DeviceMemoryPlan.Measure(gpt2, gpt2Batch, gpt2Layout, Precision.Bf16);
        long table = (long)gpt2.VocabSize * gpt2.Embedding;
        int stride = DeviceLanguageModelHead.PaddedStride(gpt2.VocabSize);
        Assert.That(stride, Is.EqualTo(50304), "V = 50257 padded to a multiple of 64");
        Assert.That(Bytes(bf16, "wte"), Is.EqualTo(4 * table).Within(DeviceArena.Alignment), "bf16: wte in fp32 for the lookup");
        Assert.That(Bytes(bf16, "lm_head (bf16 copy of wte)"), Is.EqualTo(2L * stride * gpt2.Embedding).Within(DeviceArena.Alignment),
            "bf16: the head's bf16 copy of wte, with zero rows up to the logit stride");
        Assert.That(Bytes(fp32, "lm_head (bf16 copy of wte)"), Is.Zero, "fp32: the head reads wte itself");
        Assert.That(Bytes(fp32, "head.target_hidden_bf16") + Bytes(fp32, "head.logit_gradient_bf16"), Is.Zero, "fp32: no bf16 head operands");
        Assert.That(Bytes(bf16, "head.logit_gradient_bf16") * 2, Is.EqualTo(Bytes(bf16, "head.logits")).Within(DeviceArena.Alignment),
            "bf16: d(logits) in bf16, the logits' shape");
        Assert.That(Bytes(fp32, "head.logits") % (4L * stride), Is.Zero, "fp32: whole logit rows of the padded stride");
        Assert.That(Bytes(bf16, "head.logits") % (4L * stride), Is.Zero, "bf16: whole logit rows of the padded stride");

        // Llama 3 8B (untied): lm_head only in bf16, at half its fp32 bytes.
        var llama = LlamaShapes.Named["llama3-8b"];
        var layout = PromptLayout.Uniform(1, 20);
        var batch = new TokenBatch(2, 64, 20);
        batch.Reset(64);
        for (int r = 0; r < 2; r++) batch.AddRow(new int[60], new int[4]);
        long head = (long)llama.VocabSize * llama.Embedding;
        Assert.That(Bytes(DeviceMemoryPlan.Measure(llama, batch, layout), "lm_head"), Is.EqualTo(4 * head), "fp32: lm_head in fp32");
        var llamaBf16 = DeviceMemoryPlan.Measure(llama, batch, layout, Precision.Bf16);
        Assert.That(Bytes(llamaBf16, "lm_head"), Is.EqualTo(2 * head), "bf16: lm_head stored only in bf16");
        Assert.That(llamaBf16.Arenas.SelectMany(a => a.Tensors).Count(t => t.Name.StartsWith("lm_head", StringComparison.Ordinal)), Is.EqualTo(1), "no fp32 lm_head beside it");
    }

    [Test]
    public void TheHeadsChunksAreOfOneSizeAndCoverEveryTarget()
    {
        // gpt2-small's head at the README's benchmark (16 rows × 255 targets): 256 MiB of fp32 logits and bf16 gradient rows.
        var head = DeviceArena.Measure("head", carve => new DeviceLanguageModelHead(carve, 768, 50257, 4080, bf16: true));
        Assert.That(head.LogitRows, Is.EqualTo((1 << 28) / (50304 * 6)));
        Assert.That(head.BalancedChunk(4080), Is.EqualTo(816), "5 chunks of 816, not 4 of 889 and a tail of 524");
        foreach (int count in new[] { 1, 2, 888, 889, 890, 1777, 1778, 1779, 4080, 100_000 })
        {
            int chunk = head.BalancedChunk(count), chunks = (count + chunk - 1) / chunk;
            Assert.That(chunk, Is.InRange(1, head.LogitRows), $"{count} rows: a chunk fits the logit buffer");
            Assert.That(chunks, Is.EqualTo((count + head.LogitRows - 1) / head.LogitRows), $"{count} rows: no more chunks than the buffer needs");
            Assert.That(count - (chunks - 1) * chunk, Is.GreaterThan(chunk - chunks), $"{count} rows: the last chunk is about as long as the others");
        }
    }

    /// <summary>
    /// The bf16 head at GPT-2's vocabulary (its weight padded to 50304 zero-filled rows) with more targets than its logit
    /// buffer holds (1000 targets, 889 rows: two chunks of 500), read from scattered hidden rows: the loss and every
    /// target's d(h) against float64 on the same bf16 operands. A chunk reading or writing another chunk's rows, a target
    /// row's hidden row mixed up, or a GEMM over padding holding anything but zeros moves them far past the tolerance.
    /// </summary>
    [Test]
    public void ManyTargetsAtGpt2sVocabularyRunInChunksOverThePaddedHead()
    {
        const int vocab = 50257, d = 64, targets = 1000, hiddenRows = 1200;
        const float gradientWeight = 3f;
        var rng = new Random(12);
        float[] weight = [.. Enumerable.Range(0, vocab * d).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.5f)];
        float[] hidden = [.. Enumerable.Range(0, hiddenRows * d).Select(_ => (float)(rng.NextDouble() - 0.5) * 4f)];
        int[] ids = [.. Enumerable.Range(0, targets).Select(_ => rng.Next(vocab))];
        int[] rows = [.. Enumerable.Range(0, targets).Select(t => (t * 7 + 3) % hiddenRows)];

        using var device = TestDevices.Open(kind);
        DeviceArena? weightArena = null, headArena = null;
        var headWeight = DeviceArena.Allocate(device, "head weight", carve =>
        {
            weightArena = carve.Arena;
            return DeviceLanguageModelHead.UploadWeight(carve, "lm_head", vocab, d, TensorValues.Of(weight), bf16: true);
        });
        using var weights = weightArena;
        var head = DeviceArena.Allocate(device, "head", carve => { headArena = carve.Arena; return new DeviceLanguageModelHead(carve, d, vocab, targets, bf16: true); });
        using var headMemory = headArena;
        Assert.That(head.LogitRows, Is.LessThan(targets), "the targets take more than one chunk");
        Assert.That(head.LogitStride, Is.EqualTo(50304));
        Assert.That(headWeight.Length, Is.EqualTo(50304L * d), "the bf16 weight carries the zero rows up to the stride");
        using var dHidden = device.Upload(hidden);
        using var dGradient = device.Allocate<float>((long)targets * d);
        ids.CopyTo(head.HostTargetIds, 0);
        rows.CopyTo(head.HostHiddenRows, 0);
        head.SetTargets(targets);
        float loss = head.Run(dHidden.Span, headWeight, 1f, dGradient.Span, gradientWeight, withGradient: true, countGreedyMatches: false);
        float[] gradient = dGradient.Download();

        // float64 on the bf16 operands; d(logits) rounded to bf16 as the loss kernel writes it.
        double[] w16 = [.. weight.Select(x => (double)Bf16(x))], h16 = [.. hidden.Select(x => (double)Bf16(x))];
        double expectedLoss = 0, error = 0, norm = 0;
        var logits = new double[vocab];
        for (int t = 0; t < targets; t++)
        {
            int row = rows[t];
            for (int v = 0; v < vocab; v++)
            {
                double sum = 0;
                for (int k = 0; k < d; k++) sum += h16[row * d + k] * w16[v * d + k];
                logits[v] = sum;
            }
            double max = logits.Max(), z = logits.Sum(x => Math.Exp(x - max));
            expectedLoss += max + Math.Log(z) - logits[ids[t]];
            var dh = new double[d];
            for (int v = 0; v < vocab; v++)
            {
                double g = (Math.Exp(logits[v] - max) / z - (v == ids[t] ? 1 : 0)) * gradientWeight / targets;
                double rounded = Bf16((float)g);
                for (int k = 0; k < d; k++) dh[k] += rounded * w16[v * d + k];
            }
            for (int k = 0; k < d; k++)
            {
                error += Math.Pow(gradient[t * d + k] - dh[k], 2);
                norm += dh[k] * dh[k];
            }
        }
        expectedLoss /= targets;
        Assert.That(loss, Is.EqualTo(expectedLoss).Within(1e-5 * expectedLoss), "mean loss over both chunks");
        Assert.That(Math.Sqrt(error / norm), Is.LessThan(1e-3), "every target's d(h) (relative L2)");
    }

    private static long Bytes(DeviceMemoryPlan plan, string tensor) =>
        plan.Arenas.SelectMany(a => a.Tensors).Where(t => t.Name == tensor).Sum(t => t.Bytes);
}
