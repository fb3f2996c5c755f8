using System.Text.Json.Nodes;
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
/// The device engines at <see cref="Precision.Bf16"/> (block matrices stored bf16, their GEMMs on bf16 operands with fp32
/// sums, attention on bf16 tensor cores at head size 64) against the float64 results of PyTorch fixtures, with issue 12's
/// bar: our error (loss, and prompt gradient in relative L2) at most twice PyTorch bf16 autocast's own error on the same
/// case, which tools/reference/bf16_reference.py records in fixtures/bf16/pytorch_bf16_errors.json. Head size 8: the
/// committed family fixtures; head size 64: the models that script writes under fixtures/bf16/.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Bf16EngineTests(DeviceKind kind)
{
    private const string CaseName = "case-a";

    private sealed record Result(double Loss, double[] Gradient);

    /// <summary>A fixture's inputs: its prompts and rows.</summary>
    private sealed record Inputs(float[] Prompts, int PromptCount, int PromptLength, TokenBatch Batch);

    private static string FixtureDirectory(string model) => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", model);

    public static IEnumerable<TestCaseData> Gpt2Models() => Models("gpt2/tiny", "bf16/gpt2-hs64");

    /// <remarks>
    /// llama/tiny: grouped-query (4 heads on 2); the hs64 models: multi-query (2 on 1), q and k at twice the init (sharp
    /// attention). The earlier in-memory unbiased hs64 model (seed 6), whose 8.9% gradient error was unexplained: ours 14.1%
    /// against PyTorch bf16's 4.9% on that one draw, but over 16 draws of a 1e-3 weight perturbation ours has median 5.6%
    /// (2.9–20%) and PyTorch's 8.3% (5.5–19%). The case is ill-conditioned (rounding layer 0's k-projection input alone
    /// moves the gradient 6%), and a simulation of our rounding in float64 reproduces the 8.9%: no op of ours is at fault.
    /// </remarks>
    public static IEnumerable<TestCaseData> LlamaModels() => Models("llama/tiny", "llama/tiny-attention-bias", "bf16/llama-hs64", "bf16/llama-hs64-attention-bias");

    public static IEnumerable<TestCaseData> T5Models() => Models("t5/v1_0", "t5/v1_1", "bf16/t5-hs64");

    private static IEnumerable<TestCaseData> Models(params string[] models) =>
        models.Select(model => new TestCaseData(model).SetName($"{{m}}({model})"));

    [TestCaseSource(nameof(Gpt2Models))]
    public void Gpt2ErrorIsAtMostTwicePyTorchBf16s(string model)
    {
        var fixture = Gpt2Fixture.LoadFrom(FixtureDirectory(model), CaseName);
        var weights = Gpt2Checkpoint.Load<float>(fixture.ModelDirectory);
        var inputs = new Inputs(fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
        AssertAtMostTwicePyTorch(model, new Result(fixture.LossF64, fixture.PromptGradientF64),
            Reference(new CpuGpt2Engine<double>(Widen(weights, roundBlocks: true)), inputs),
            Run(new CudaGpt2Engine(TestDevices.Open(kind), weights, ownsDevice: true), inputs),
            Run(new CudaGpt2Engine(TestDevices.Open(kind), weights, ownsDevice: true, bf16: true), inputs));
    }

    [TestCaseSource(nameof(LlamaModels))]
    public void LlamaErrorIsAtMostTwicePyTorchBf16s(string model)
    {
        var fixture = Gpt2Fixture.LoadFrom(FixtureDirectory(model), CaseName);
        var weights = LlamaCheckpoint.Load<float>(fixture.ModelDirectory);
        var inputs = new Inputs(fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
        AssertAtMostTwicePyTorch(model, new Result(fixture.LossF64, fixture.PromptGradientF64),
            Reference(new CpuLlamaEngine<double>(Widen(weights, roundBlocks: true)), inputs),
            Run(new CudaLlamaEngine(TestDevices.Open(kind), weights, ownsDevice: true), inputs),
            Run(new CudaLlamaEngine(TestDevices.Open(kind), weights, ownsDevice: true, bf16: true), inputs));
    }

    [TestCaseSource(nameof(T5Models))]
    public void T5ErrorIsAtMostTwicePyTorchBf16s(string model)
    {
        var fixture = T5Fixture.LoadFrom(FixtureDirectory(model), CaseName);
        var weights = T5Checkpoint.Load<float>(fixture.ModelDirectory);
        var inputs = new Inputs(fixture.Prompts, fixture.PromptCount, fixture.PromptLength, fixture.Batch());
        AssertAtMostTwicePyTorch(model, new Result(fixture.LossF64, fixture.PromptGradientF64),
            Reference(new CpuT5Engine<double>(Widen(weights, roundBlocks: true)), inputs),
            Run(new CudaT5Engine(TestDevices.Open(kind), weights, ownsDevice: true), inputs),
            Run(new CudaT5Engine(TestDevices.Open(kind), weights, ownsDevice: true, bf16: true), inputs));
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

    /// <summary>
    /// The bar: bf16's loss and gradient errors against float64 at most twice PyTorch bf16 autocast's on the same case.
    /// Also: the fp32 engine within 1e-5 of float64 and bf16 visibly not fp32 (so bf16 really ran). The error against
    /// float64 on the bf16-rounded weights (what rounding the activations alone costs) is printed, not asserted.
    /// </summary>
    private static void AssertAtMostTwicePyTorch(string model, Result exact, Result roundedWeights, Result fp32, Result bf16)
    {
        var pytorch = PyTorchBf16Error(model);
        double fp32Error = RelativeError(fp32.Gradient, exact.Gradient);
        double gradientError = RelativeError(bf16.Gradient, exact.Gradient);
        double lossError = Math.Abs(bf16.Loss - exact.Loss) / Math.Abs(exact.Loss);
        TestContext.Out.WriteLine($"{model}: PyTorch bf16 loss {pytorch.Loss:G3}, gradient {pytorch.Gradient:G3}; ours loss {lossError:G3}, gradient {gradientError:G3} " +
            $"(ratios {lossError / pytorch.Loss:F2}, {gradientError / pytorch.Gradient:F2}); ours vs float64 on bf16 weights {RelativeError(bf16.Gradient, roundedWeights.Gradient):G3}; fp32 {fp32Error:G3}");
        Assert.That(fp32Error, Is.LessThan(1e-5), "the fp32 engine");
        Assert.That(gradientError, Is.GreaterThan(100 * fp32Error), "bf16 ran: its error is that of 8-bit mantissas, not of fp32");
        Assert.That(gradientError, Is.LessThanOrEqualTo(2 * pytorch.Gradient), "prompt gradient: at most twice PyTorch bf16's relative L2 error");
        Assert.That(lossError, Is.LessThanOrEqualTo(2 * pytorch.Loss), "loss: at most twice PyTorch bf16's relative error");
    }

    /// <summary>PyTorch bf16 autocast's relative errors against float64 on <paramref name="model"/>'s case, as recorded.</summary>
    private static (double Loss, double Gradient) PyTorchBf16Error(string model)
    {
        var json = JsonNode.Parse(File.ReadAllText(FixtureDirectory("bf16/pytorch_bf16_errors.json")))!;
        var entry = json["cases"]?[$"{model}/{CaseName}"] ?? throw new AssertionException($"pytorch_bf16_errors.json has no {model}/{CaseName}: rerun tools/reference/bf16_reference.py");
        return (entry["loss_relative_error"]!.GetValue<double>(), entry["prompt_grad_relative_l2_error"]!.GetValue<double>());
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
        Assert.That(fp32.BytesOf(DeviceMemoryKind.Weights) - bf16.BytesOf(DeviceMemoryKind.Weights), Is.EqualTo(2 * blockParameters).Within(256 * config.Layers * 4),
            "each block matrix: 2 bytes less per parameter (up to alignment)");
        long wide = Bytes(fp32, "wide");  // fp32 [n, inner]
        Assert.That(wide, Is.GreaterThan(0), "fp32 keeps its wide buffer for the GELU output");
        Assert.That(Bytes(bf16, "bf16_operands"), Is.EqualTo(wide / 2).Within(DeviceArena.Alignment), "room for a bf16 GEMM operand: [n, inner] at 2 bytes");
        Assert.That(Bytes(bf16, "wide"), Is.Zero, "the GELU output is written bf16 into the operand buffer, never fp32");
        Assert.That(bf16.BytesOf(DeviceMemoryKind.Workspace), Is.LessThan(fp32.BytesOf(DeviceMemoryKind.Workspace)), "bf16 operands replace the fp32 wide buffer");
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
        Assert.That(fp32.BytesOf(DeviceMemoryKind.Activations) - bf16.BytesOf(DeviceMemoryKind.Activations), Is.EqualTo(output / 2).Within(2 * DeviceArena.Alignment),
            "the saved activations shrink by exactly that");
    }

    private static long Bytes(DeviceMemoryPlan plan, string tensor) =>
        plan.Arenas.SelectMany(a => a.Tensors).Where(t => t.Name == tensor).Sum(t => t.Bytes);

    [Test]
    public void TheCpuEnginesRefuseBf16()
    {
        var weights = TestModels.Random<float>(TestModels.TinyConfig(vocab: 41, positions: 24, embedding: 32, layers: 3, heads: 4, inner: 64), seed: 4);
        Assert.That(() => EngineFactory.Create(weights, "cpu", "test", new EngineOptions(Precision.Bf16)),
            Throws.ArgumentException.With.Message.Contains("CPU engines are the fp32/fp64 references"));
    }

    private static T5Weights<double> Widen(T5Weights<float> w, bool roundBlocks)
    {
        T5AttentionWeights<double> Attention(T5AttentionWeights<float> a) => new()
        {
            Query = Block(a.Query, roundBlocks), Key = Block(a.Key, roundBlocks), Value = Block(a.Value, roundBlocks), Output = Block(a.Output, roundBlocks),
        };
        T5FeedForwardWeights<double> FeedForward(T5FeedForwardWeights<float> f) => new()
        {
            Input = Block(f.Input, roundBlocks), Linear = f.Linear is null ? null : Block(f.Linear, roundBlocks), Output = Block(f.Output, roundBlocks),
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

    private static double[] Block(float[] x, bool round) =>
        round ? [.. x.Select(v => (double)BitConverter.UInt32BitsToSingle((uint)ElementConversion.SingleToBFloat16(v) << 16))] : Plain(x);

    private static LlamaWeights<double> Widen(LlamaWeights<float> w, bool roundBlocks) => new()
    {
        Config = w.Config,
        TokenEmbedding = Plain(w.TokenEmbedding),
        LanguageModelHead = w.LanguageModelHead is null ? null : Plain(w.LanguageModelHead),
        FinalNormWeight = Plain(w.FinalNormWeight),
        Layers = [.. w.Layers.Select(l => new LlamaLayerWeights<double>
        {
            AttentionNormWeight = Plain(l.AttentionNormWeight), MlpNormWeight = Plain(l.MlpNormWeight),
            Query = Block(l.Query, roundBlocks), Key = Block(l.Key, roundBlocks), Value = Block(l.Value, roundBlocks), Output = Block(l.Output, roundBlocks),
            QueryBias = Plain(l.QueryBias), KeyBias = Plain(l.KeyBias), ValueBias = Plain(l.ValueBias), OutputBias = Plain(l.OutputBias),
            Gate = Block(l.Gate, roundBlocks), Up = Block(l.Up, roundBlocks), Down = Block(l.Down, roundBlocks),
        })],
    };

    /// <summary>The same weights in float64, the block matrices rounded to bf16 when <paramref name="roundBlocks"/>.</summary>
    private static Gpt2Weights<double> Widen(Gpt2Weights<float> w, bool roundBlocks)
    {
        double[] Block(float[] x) => Bf16EngineTests.Block(x, roundBlocks);
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
                QkvWeight = Block(l.QkvWeight), QkvBias = Plain(l.QkvBias),
                AttentionProjectionWeight = Block(l.AttentionProjectionWeight), AttentionProjectionBias = Plain(l.AttentionProjectionBias),
                Norm2Weight = Plain(l.Norm2Weight), Norm2Bias = Plain(l.Norm2Bias),
                FcWeight = Block(l.FcWeight), FcBias = Plain(l.FcBias),
                FcProjectionWeight = Block(l.FcProjectionWeight), FcProjectionBias = Plain(l.FcProjectionBias),
            })],
        };
    }
}
