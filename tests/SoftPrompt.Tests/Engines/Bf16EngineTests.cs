using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;
using SoftPrompt.Tests.T5;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// The device engines at <see cref="Precision.Bf16"/> (block matrices stored bf16, their GEMMs on bf16 operands with fp32
/// sums, attention on bf16 tensor cores at head size 64) against float64, with issue 12's bar: our median error (loss,
/// and prompt gradient in relative L2) over a case's weight draws at most twice PyTorch bf16 autocast's median over the
/// same draws, which tools/reference/bf16_reference.py records in fixtures/bf16/pytorch_bf16_errors.json. Medians, not
/// one draw: sharp attention makes these cases ill-conditioned under rounding, and on one draw either engine's error can
/// be three times its error on a 1e-3 perturbation of it (<see cref="WeightDraws"/>). Head size 8: the committed family
/// fixtures; head size 64: the models that script writes under fixtures/bf16/.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16EngineTests(DeviceKind kind)
{
    private const string CaseName = "case-a";

    private sealed record Result(double Loss, double[] Gradient);

    /// <summary>A fixture's inputs: its prompts and rows.</summary>
    private sealed record Inputs(float[] Prompts, int PromptCount, int PromptLength, TokenBatch Batch);

    /// <summary>How a family's engines open a model folder: the float64 CPU reference, and the device engine (bf16 or fp32).</summary>
    private sealed record Family(Func<string, CpuEngine<double>> Exact, Func<string, bool, IPromptEngine> Device);

    /// <summary>What the script recorded for one draw: the weights' SHA-256, PyTorch's float64 loss and bf16 errors.</summary>
    private sealed record RecordedDraw(int Draw, string WeightsSha256, double LossF64, double LossError, double GradientError);

    private static string FixtureDirectory(string model) => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", model);

    public static IEnumerable<TestCaseData> Gpt2Models() => Models("gpt2/tiny", "bf16/gpt2-hs64");

    /// <remarks>
    /// llama/tiny: grouped-query (4 heads on 2); the hs64 models: multi-query (2 on 1), q and k at twice the init (sharp
    /// attention). The earlier in-memory unbiased hs64 model (seed 6) showed why one draw is no bar: ours 14.1% against
    /// PyTorch bf16's 4.9% on that draw, but over 16 draws of a 1e-3 weight perturbation ours had median 5.6% (2.9–20%)
    /// and PyTorch's 8.3% (5.5–19%); rounding layer 0's k-projection input alone moves its gradient 6%.
    /// </remarks>
    public static IEnumerable<TestCaseData> LlamaModels() => Models("llama/tiny", "llama/tiny-attention-bias", "bf16/llama-hs64", "bf16/llama-hs64-attention-bias");

    public static IEnumerable<TestCaseData> T5Models() => Models("t5/v1_0", "t5/v1_1", "bf16/t5-hs64");

    private static IEnumerable<TestCaseData> Models(params string[] models) =>
        models.Select(model => new TestCaseData(model).SetName($"{{m}}({model})"));

    private Family Gpt2 => new(
        dir => new CpuGpt2Engine<double>(Widen(Gpt2Checkpoint.Load<float>(dir))),
        (dir, bf16) => new CudaGpt2Engine(TestDevices.Open(kind), Gpt2Checkpoint.Load<float>(dir), ownsDevice: true, bf16: bf16));

    private Family Llama => new(
        dir => new CpuLlamaEngine<double>(Widen(LlamaCheckpoint.Load<float>(dir))),
        (dir, bf16) => new CudaLlamaEngine(TestDevices.Open(kind), LlamaCheckpoint.Load<float>(dir), ownsDevice: true, bf16: bf16));

    private Family T5 => new(
        dir => new CpuT5Engine<double>(Widen(T5Checkpoint.Load<float>(dir))),
        (dir, bf16) => new CudaT5Engine(TestDevices.Open(kind), T5Checkpoint.Load<float>(dir), ownsDevice: true, bf16: bf16));

    [TestCaseSource(nameof(Gpt2Models)), Category("Slow")]
    public void Gpt2MedianErrorIsAtMostTwicePyTorchBf16s(string model) => AssertMedianWithin(model, Gpt2Inputs(model), Gpt2, AllDraws, 2);

    [TestCaseSource(nameof(LlamaModels)), Category("Slow")]
    public void LlamaMedianErrorIsAtMostTwicePyTorchBf16s(string model) => AssertMedianWithin(model, Gpt2Inputs(model), Llama, AllDraws, 2);

    [TestCaseSource(nameof(T5Models)), Category("Slow")]
    public void T5MedianErrorIsAtMostTwicePyTorchBf16s(string model) => AssertMedianWithin(model, T5Inputs(model), T5, AllDraws, 2);

    /// <summary>
    /// The fast suite's smoke run of the bar: one draw (the committed weights) of one head-size-64 case per family, within
    /// three times PyTorch's median — loose, as one draw is noisy (on all 9 draws of these cases ours stays under 1.9
    /// times it; the unbiased Llama, whose draws vary most, is left to the Slow tests and their twice-the-median bar).
    /// Accumulating the emulated bf16 GEMM in bf16 puts each of the three at 3.4 times or more.
    /// </summary>
    [TestCase("gpt2", "bf16/gpt2-hs64")]
    [TestCase("llama", "bf16/llama-hs64-attention-bias")]
    [TestCase("t5", "bf16/t5-hs64")]
    public void OneDrawIsWithinThricePyTorchBf16sMedian(string family, string model) => AssertMedianWithin(model,
        family == "t5" ? T5Inputs(model) : Gpt2Inputs(model), family switch { "gpt2" => Gpt2, "llama" => Llama, _ => T5 }, 1, 3);

    private const int AllDraws = int.MaxValue;

    private static Inputs Gpt2Inputs(string model)
    {
        var fixture = Gpt2Fixture.LoadFrom(FixtureDirectory(model), CaseName);
        return new Inputs(fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
    }

    private static Inputs T5Inputs(string model)
    {
        var fixture = T5Fixture.LoadFrom(FixtureDirectory(model), CaseName);
        return new Inputs(fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
    }

    /// <summary>
    /// The bar: over the first <paramref name="drawCount"/> recorded draws, the median of our bf16 loss and gradient errors
    /// against float64 at most <paramref name="factor"/> times PyTorch bf16 autocast's median over all its draws. Each draw's
    /// weights are rebuilt here and checked bit-identical to the script's (SHA-256), and our float64 loss on them equal to
    /// PyTorch's. On draw 0 also: the fp32 engine within 1e-5 of float64 and bf16 visibly not fp32 (so bf16 really ran).
    /// </summary>
    private static void AssertMedianWithin(string model, Inputs inputs, Family family, int drawCount, double factor)
    {
        var (perturbation, recorded, pytorchLoss, pytorchGradient) = PyTorchBf16Draws(model);
        string modelDirectory = FixtureDirectory(model);
        string scratch = Directory.CreateTempSubdirectory("softprompt-bf16-draws-").FullName;
        var lossErrors = new List<double>();
        var gradientErrors = new List<double>();
        try
        {
            foreach (var draw in recorded.Take(drawCount))
            {
                string dir = Path.Combine(scratch, $"draw-{draw.Draw}");
                Assert.That(WeightDraws.Write(modelDirectory, draw.Draw, perturbation, dir), Is.EqualTo(draw.WeightsSha256),
                    $"draw {draw.Draw}: our weights are bit-identical to bf16_reference.py's");
                var exact = Reference(family.Exact(dir), inputs);
                Assert.That(exact.Loss, Is.EqualTo(draw.LossF64).Within(1e-9 * Math.Abs(draw.LossF64)), $"draw {draw.Draw}: our float64 loss is PyTorch's");
                var bf16 = Run(family.Device(dir, true), inputs);
                double gradientError = RelativeError(bf16.Gradient, exact.Gradient);
                if (draw.Draw == 0)
                {
                    double fp32Error = RelativeError(Run(family.Device(dir, false), inputs).Gradient, exact.Gradient);
                    Assert.That(fp32Error, Is.LessThan(1e-5), "the fp32 engine");
                    Assert.That(gradientError, Is.GreaterThan(100 * fp32Error), "bf16 ran: its error is that of 8-bit mantissas, not of fp32");
                }
                lossErrors.Add(Math.Abs(bf16.Loss - exact.Loss) / Math.Abs(exact.Loss));
                gradientErrors.Add(gradientError);
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
        double lossMedian = Median(lossErrors), gradientMedian = Median(gradientErrors);
        TestContext.Out.WriteLine($"{model}, {lossErrors.Count} draw(s): loss PyTorch bf16 {pytorchLoss:G3} ({Span(recorded.Select(d => d.LossError))}), " +
            $"ours {lossMedian:G3} ({Span(lossErrors)}), ratio {lossMedian / pytorchLoss:F2}; gradient PyTorch bf16 {pytorchGradient:G3} " +
            $"({Span(recorded.Select(d => d.GradientError))}), ours {gradientMedian:G3} ({Span(gradientErrors)}), ratio {gradientMedian / pytorchGradient:F2}");
        Assert.That(gradientMedian, Is.LessThanOrEqualTo(factor * pytorchGradient), $"prompt gradient: median at most {factor}× PyTorch bf16's median relative L2 error");
        Assert.That(lossMedian, Is.LessThanOrEqualTo(factor * pytorchLoss), $"loss: median at most {factor}× PyTorch bf16's median relative error");
    }

    private static string Span(IEnumerable<double> values) => $"{values.Min():G3}–{values.Max():G3}";

    private static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        int half = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
    }

    private static Result Run(IPromptEngine engine, Inputs inputs)
    {
        using var _ = engine;
        engine.LoadPrompts(inputs.Prompts, inputs.PromptCount, inputs.PromptLength);
        float loss = engine.ForwardBackward(inputs.Batch);
        var gradient = new float[inputs.Prompts.Length];
        engine.ReadPromptGradient(gradient);
        return new Result(loss, [.. gradient.Select(g => (double)g)]);
    }

    private static Result Reference(CpuEngine<double> engine, Inputs inputs)
    {
        using var _ = engine;
        engine.LoadPrompts([.. inputs.Prompts.Select(p => (double)p)], PromptLayout.Uniform(inputs.PromptCount, inputs.PromptLength));
        double loss = engine.LossAndGradient(inputs.Batch);
        return new Result(loss, engine.PromptGradient.ToArray());
    }

    /// <summary>The perturbation, the draws and PyTorch bf16 autocast's median errors on <paramref name="model"/>'s case, as recorded.</summary>
    private static (double Perturbation, RecordedDraw[] Draws, double LossMedian, double GradientMedian) PyTorchBf16Draws(string model)
    {
        var json = JsonNode.Parse(File.ReadAllText(FixtureDirectory("bf16/pytorch_bf16_errors.json")))!;
        var entry = json["cases"]?[$"{model}/{CaseName}"] ?? throw new AssertionException($"pytorch_bf16_errors.json has no {model}/{CaseName}: rerun tools/reference/bf16_reference.py");
        RecordedDraw[] draws = [.. entry["draws"]!.AsArray().Select(d => new RecordedDraw(d!["draw"]!.GetValue<int>(), d["weights_sha256"]!.GetValue<string>(),
            d["loss_f64"]!.GetValue<double>(), d["loss_relative_error"]!.GetValue<double>(), d["prompt_grad_relative_l2_error"]!.GetValue<double>()))];
        return (json["perturbation"]!.GetValue<double>(), draws,
            entry["median_loss_relative_error"]!.GetValue<double>(), entry["median_prompt_grad_relative_l2_error"]!.GetValue<double>());
    }

    private static double RelativeError(double[] actual, double[] expected) =>
        Math.Sqrt(actual.Zip(expected, (a, e) => (a - e) * (a - e)).Sum() / expected.Sum(e => e * e));

    [Test]
    public void TheBlockMatricesTakeHalfTheirFp32BytesInThePlan()
    {
        var config = Gpt2Shapes.Named["gpt2-small"];
        var batch = new TokenBatch(4, 128, 20);
        batch.Reset(128);
        for (int r = 0; r < 4; r++) batch.AddRow(new int[100], new int[28]);
        var layout = PromptLayout.Uniform(1, 20);
        var fp32 = DeviceMemoryPlan.Measure(config, batch, layout);
        var bf16 = DeviceMemoryPlan.Measure(config, batch, layout, Precision.Bf16);
        long blockParameters = (long)config.Layers * (3L * config.Embedding * config.Embedding + config.Embedding * config.Embedding + 2L * config.Embedding * config.Inner);
        long headCopy = (long)DeviceLanguageModelHead.PaddedStride(config.VocabSize) * config.Embedding;  // the tied head's bf16 copy of wte with its zero rows (Bf16HeadTests)
        long bf16Biases = (long)config.Layers * (3L * config.Embedding + config.Inner);  // c_attn's and c_fc's: their GEMMs write bf16
        Assert.That(fp32.BytesOf(DeviceMemoryKind.Weights) - bf16.BytesOf(DeviceMemoryKind.Weights), Is.EqualTo(2 * (blockParameters + bf16Biases) - 2 * headCopy).Within(256 * config.Layers * 6),
            "each block matrix and bf16-output bias: 2 bytes less per parameter (up to alignment), the head's bf16 copy of wte 2 bytes more per parameter");
        long wide = Bytes(fp32, "wide");  // fp32 [n, inner]
        Assert.That(wide, Is.GreaterThan(0), "fp32 keeps its wide buffer for the GELU output (and d(pre-activation) backward)");
        Assert.That(Bytes(bf16, "wide_bf16"), Is.EqualTo(wide / 2).Within(DeviceArena.Alignment), "c_fc's GEMM writes GELU's output in bf16: [n, inner] at 2 bytes");
        Assert.That(Bytes(bf16, "wide"), Is.Zero, "the GELU output is never fp32 in bf16");
        Assert.That(Bytes(bf16, "bf16_operands"), Is.EqualTo(wide * 3 / 8).Within(DeviceArena.Alignment), "the other bf16 GEMM operands: at most [n, 3c] at 2 bytes");
        long headOperands = Bytes(bf16, "head.target_hidden_bf16") + Bytes(bf16, "head.logit_gradient_bf16");
        Assert.That(bf16.BytesOf(DeviceMemoryKind.Workspace) - headOperands, Is.LessThan(fp32.BytesOf(DeviceMemoryKind.Workspace)), "bf16 operands replace the fp32 wide buffer");
    }

    [Test]
    public void T5KeepsTheEncoderOutputInBf16ForTheCrossAttentionGemms()
    {
        var config = T5Shapes.Named["t5-small"];
        var layout = PromptLayout.Uniform(1, 20);
        var batch = new TokenBatch(4, 64, layout);
        batch.Reset(64);
        for (int r = 0; r < 4; r++) batch.AddRow(new int[48], new int[16]);
        var fp32 = DeviceMemoryPlan.Measure(config, batch, layout);
        var bf16 = DeviceMemoryPlan.Measure(config, batch, layout, Precision.Bf16);
        long output = Bytes(fp32, "encoder.output");
        Assert.That(output, Is.GreaterThan(0), "fp32: the encoder output in fp32");
        Assert.That(Bytes(fp32, "encoder.output_bf16"), Is.Zero, "fp32: no bf16 copy");
        Assert.That(Bytes(bf16, "encoder.output"), Is.Zero, "bf16: no fp32 encoder output");
        Assert.That(Bytes(bf16, "encoder.output_bf16"), Is.EqualTo(output / 2), "bf16: the encoder output at 2 bytes");
        long preActivations = BytesEndingWith(fp32, ".ff.hidden") + BytesEndingWith(fp32, ".ff.linear");
        long attention = T5AttentionTensors.Sum(tensor => ActivationBytesEndingWith(fp32, tensor));
        int layers = config.Layers + config.DecoderLayers;
        Assert.That(fp32.BytesOf(DeviceMemoryKind.Activations) - bf16.BytesOf(DeviceMemoryKind.Activations),
            Is.EqualTo(output / 2 + preActivations / 2 + attention / 2).Within((12 * layers + 2) * DeviceArena.Alignment),
            "the saved activations shrink by half the encoder output, the feed-forward pre-activations and the attention's q, k, v and output");
    }

    /// <summary>Every attention's saved q, k, v and output (self-attention in both stacks: q, k, v one tensor; the decoder's cross-attention: q, then k and v).</summary>
    private static readonly string[] T5AttentionTensors = [".self.qkv", ".self.output", ".cross.q", ".cross.kv", ".cross.output"];

    [TestCase(Recomputation.Off)]
    [TestCase(Recomputation.PerLayer)]
    public void T5SavesTheAttentionsQueryKeyValueAndOutputInBf16(Recomputation recomputation)
    {
        var config = T5Shapes.Named["t5-small"];
        var layout = PromptLayout.Uniform(1, 20);
        var batch = new TokenBatch(4, 64, layout);
        batch.Reset(64);
        for (int r = 0; r < 4; r++) batch.AddRow(new int[48], new int[16]);
        var fp32 = DeviceMemoryPlan.Measure(config, batch, layout, recomputation: recomputation);
        var bf16 = DeviceMemoryPlan.Measure(config, batch, layout, Precision.Bf16, recomputation);
        foreach (string tensor in T5AttentionTensors)
        {
            long bytes = ActivationBytesEndingWith(fp32, tensor);
            Assert.That(bytes, Is.GreaterThan(0), $"fp32 keeps {tensor} in fp32");
            Assert.That(ActivationBytesEndingWith(fp32, tensor + "_bf16"), Is.Zero, $"fp32: no bf16 {tensor}");
            Assert.That(ActivationBytesEndingWith(bf16, tensor), Is.Zero, $"bf16: no fp32 {tensor}");
            Assert.That(ActivationBytesEndingWith(bf16, tensor + "_bf16"), Is.EqualTo(bytes / 2).Within(2 * config.Layers * DeviceArena.Alignment), $"bf16: {tensor} at 2 bytes");
        }
    }

    [TestCase("gpt2-small", ".mlp.hidden")]
    [TestCase("llama3.2-1b", ".gate", ".up")]
    [TestCase("t5-small", ".ff.hidden", ".ff.linear")]
    [TestCase("t5-v1_0-small", ".ff.hidden")]
    public void TheMlpPreActivationsAreSavedInBf16(string shape, params string[] tensors)
    {
        IModelConfig config = shape.StartsWith("gpt2") ? Gpt2Shapes.Named[shape] : shape.StartsWith("llama") ? LlamaShapes.Named[shape]
            : shape == "t5-v1_0-small" ? T5Shapes.Named["t5-small"] with { FeedForwardProjection = T5Config.Relu } : T5Shapes.Named[shape];
        var layout = PromptLayout.Uniform(1, 20);
        var batch = new TokenBatch(4, 64, layout);
        batch.Reset(64);
        for (int r = 0; r < 4; r++) batch.AddRow(new int[48], new int[16]);
        var fp32 = DeviceMemoryPlan.Measure(config, batch, layout, recomputation: Recomputation.Off);
        var bf16 = DeviceMemoryPlan.Measure(config, batch, layout, Precision.Bf16, Recomputation.Off);
        foreach (string tensor in tensors)
        {
            long wide = BytesEndingWith(fp32, tensor);
            Assert.That(wide, Is.GreaterThan(0), $"fp32 keeps {tensor} in fp32");
            Assert.That(BytesEndingWith(fp32, tensor + "_bf16"), Is.Zero, $"fp32: no bf16 {tensor}");
            Assert.That(BytesEndingWith(bf16, tensor), Is.Zero, $"bf16: no fp32 {tensor}");
            Assert.That(BytesEndingWith(bf16, tensor + "_bf16"), Is.EqualTo(wide / 2).Within(2 * config.Layers * DeviceArena.Alignment), $"bf16: {tensor} at 2 bytes");
        }
    }

    private static long Bytes(DeviceMemoryPlan plan, string tensor) =>
        plan.Arenas.SelectMany(a => a.Tensors).Where(t => t.Name == tensor).Sum(t => t.Bytes);

    private static long BytesEndingWith(DeviceMemoryPlan plan, string suffix) =>
        plan.Arenas.SelectMany(a => a.Tensors).Where(t => t.Name.EndsWith(suffix, StringComparison.Ordinal)).Sum(t => t.Bytes);

    /// <summary>As <see cref="BytesEndingWith"/>, saved activations only (T5's q/k/v weights end in the same names).</summary>
    private static long ActivationBytesEndingWith(DeviceMemoryPlan plan, string suffix) =>
        plan.Arenas.SelectMany(a => a.Tensors).Where(t => t.Kind == DeviceMemoryKind.Activations && t.Name.EndsWith(suffix, StringComparison.Ordinal)).Sum(t => t.Bytes);

    [Test]
    public void TheCpuEnginesRefuseBf16()
    {
        var weights = TestModels.Random<float>(TestModels.TinyConfig(vocab: 41, positions: 24, embedding: 32, layers: 3, heads: 4, inner: 64), seed: 4);
        Assert.That(() => EngineFactory.Create(weights, "cpu", "test", new EngineOptions(Precision.Bf16)),
            Throws.ArgumentException.With.Message.Contains("CPU engines are the fp32/fp64 references"));
    }

    private static T5Weights<double> Widen(T5Weights<float> w)
    {
        T5AttentionWeights<double> Attention(T5AttentionWeights<float> a) => new()
        {
            Query = Plain(a.Query), Key = Plain(a.Key), Value = Plain(a.Value), Output = Plain(a.Output),
        };
        T5FeedForwardWeights<double> FeedForward(T5FeedForwardWeights<float> f) => new()
        {
            Input = Plain(f.Input), Linear = f.Linear is null ? null : Plain(f.Linear), Output = Plain(f.Output),
        };
        return new T5Weights<double>
        {
            Config = w.Config,
            TokenEmbedding = Plain(w.TokenEmbedding),
            LanguageModelHead = w.LanguageModelHead is null ? null : Plain(w.LanguageModelHead),
            EncoderRelativeBias = Plain(w.EncoderRelativeBias),
            DecoderRelativeBias = Plain(w.DecoderRelativeBias),
            EncoderFinalNormWeight = Plain(w.EncoderFinalNormWeight),
            DecoderFinalNormWeight = Plain(w.DecoderFinalNormWeight),
            EncoderLayers = [.. w.EncoderLayers.Select(l => new T5EncoderLayerWeights<double>
            {
                SelfAttentionNormWeight = Plain(l.SelfAttentionNormWeight), SelfAttention = Attention(l.SelfAttention),
                FeedForwardNormWeight = Plain(l.FeedForwardNormWeight), FeedForward = FeedForward(l.FeedForward),
            })],
            DecoderLayers = [.. w.DecoderLayers.Select(l => new T5DecoderLayerWeights<double>
            {
                SelfAttentionNormWeight = Plain(l.SelfAttentionNormWeight), SelfAttention = Attention(l.SelfAttention),
                CrossAttentionNormWeight = Plain(l.CrossAttentionNormWeight), CrossAttention = Attention(l.CrossAttention),
                FeedForwardNormWeight = Plain(l.FeedForwardNormWeight), FeedForward = FeedForward(l.FeedForward),
            })],
        };
    }

    private static double[] Plain(float[] x) => [.. x.Select(v => (double)v)];


    private static LlamaWeights<double> Widen(LlamaWeights<float> w) => new()
    {
        Config = w.Config,
        TokenEmbedding = Plain(w.TokenEmbedding),
        LanguageModelHead = w.LanguageModelHead is null ? null : Plain(w.LanguageModelHead),
        FinalNormWeight = Plain(w.FinalNormWeight),
        Layers = [.. w.Layers.Select(l => new LlamaLayerWeights<double>
        {
            AttentionNormWeight = Plain(l.AttentionNormWeight), MlpNormWeight = Plain(l.MlpNormWeight),
            Query = Plain(l.Query), Key = Plain(l.Key), Value = Plain(l.Value), Output = Plain(l.Output),
            QueryBias = Plain(l.QueryBias), KeyBias = Plain(l.KeyBias), ValueBias = Plain(l.ValueBias), OutputBias = Plain(l.OutputBias),
            Gate = Plain(l.Gate), Up = Plain(l.Up), Down = Plain(l.Down),
        })],
    };

    /// <summary>The same weights in float64.</summary>
    private static Gpt2Weights<double> Widen(Gpt2Weights<float> w)
    {
        return new Gpt2Weights<double>
        {
            Config = w.Config,
            TokenEmbedding = Plain(w.TokenEmbedding),
            PositionEmbedding = Plain(w.PositionEmbedding),
            FinalNormWeight = Plain(w.FinalNormWeight),
            FinalNormBias = Plain(w.FinalNormBias),
            Layers = [.. w.Layers.Select(l => new Gpt2LayerWeights<double>
            {
                Norm1Weight = Plain(l.Norm1Weight), Norm1Bias = Plain(l.Norm1Bias),
                QkvWeight = Plain(l.QkvWeight), QkvBias = Plain(l.QkvBias),
                AttentionProjectionWeight = Plain(l.AttentionProjectionWeight), AttentionProjectionBias = Plain(l.AttentionProjectionBias),
                Norm2Weight = Plain(l.Norm2Weight), Norm2Bias = Plain(l.Norm2Bias),
                FcWeight = Plain(l.FcWeight), FcBias = Plain(l.FcBias),
                FcProjectionWeight = Plain(l.FcProjectionWeight), FcProjectionBias = Plain(l.FcProjectionBias),
            })],
        };
    }
}
