using SoftPrompt.Engines;
using SoftPrompt.Tests.Tuning;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Ensembles;

/// <summary>
/// Training K prompts in one run equals K separate runs on the same batches: the engine's loss is the mean over all
/// K prompts' targets, so each prompt's gradient is 1/K of its own mean-loss gradient and the step scales it by K.
/// </summary>
public sealed class EnsembleTrainingTests
{
    private const int PromptLength = 4;
    private static readonly List<TokenizedExample> Train = DemoModel.Rows("reverse.train.jsonl", 40);

    private static float[] Init(int seed, int width)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, PromptLength * width).Select(_ => (float)(random.NextDouble() - 0.5))];
    }

    private static float[] RunSingle(IPromptEngine engine, float[] init, TrainOptions options)
    {
        engine.LoadPrompts(init, 1, PromptLength);
        new TrainingRun(engine, Train, options).Run();
        return ReadAll(engine);
    }

    private static float[] ReadAll(IPromptEngine engine)
    {
        var values = new float[engine.RequirePrompts().ValueCount(engine.EmbeddingSize)];
        engine.ReadPrompts(values);
        return values;
    }

    [Category("Slow")]
    [TestCase("cpu")]
    [TestCase("cuda-emulated")]
    public void EachPromptsGradientTimesKIsItsSinglePromptGradient(string device)
    {
        if (device == "cuda-emulated" && !SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        using var model = EngineFactory.Open(DemoModel.Directory, device);
        var engine = model.Engine;
        int width = model.Engine.EmbeddingSize, size = PromptLength * width;
        float[] a = Init(1, width), b = Init(2, width), c = Init(3, width);
        var sampler = new BatchSampler(Train, 6, PromptLength, seed: 0, shuffle: false, promptsPerExample: 3);
        var batch = sampler.Next();
        Assert.That(batch.Rows, Is.EqualTo(18));
        Assert.That(batch.PromptIndex.Take(6), Is.EqualTo(new[] { 0, 1, 2, 0, 1, 2 }), "each example once per prompt, consecutively");

        engine.LoadPrompts([.. a, .. b, .. c], 3, PromptLength);
        engine.ForwardBackward(batch);
        var together = new float[3 * size];
        engine.ReadPromptGradient(together);

        var single = new BatchSampler(Train, 6, PromptLength, seed: 0, shuffle: false).Next();
        float[][] inits = [a, b, c];
        for (int k = 0; k < 3; k++)
        {
            engine.LoadPrompts(inits[k], 1, PromptLength);
            engine.ForwardBackward(single);
            var alone = new float[size];
            engine.ReadPromptGradient(alone);
            var scaled = together.AsSpan(k * size, size).ToArray().Select(g => g * 3).ToArray();
            Assert.That(scaled, Is.EqualTo(alone).Within(1e-5f * alone.Max(Math.Abs)), $"prompt {k}");  // float32, BLAS kernels chosen by batch size
        }
    }

    // One SGD step is the algebra itself: equal to fp32 rounding. Over several steps the rounding differences grow with
    // the trajectory's sensitivity (the batches differ in size — 2B rows against B — so GEMM blocking and the
    // 1/(K·T)·K scaling round differently), so the bound there is relative to how far each prompt moved; a wrong
    // scale (1 instead of K) would be off by about half that distance.
    [Category("Slow")]
    [TestCase(OptimizerKind.Sgd, 0.05f, false, 1, 1, 2e-6)]
    [TestCase(OptimizerKind.Sgd, 0.05f, false, 1, 4, 1e-4)]
    [TestCase(OptimizerKind.Sgd, 0.05f, true, 2, 4, 1e-4)]
    [TestCase(OptimizerKind.AdamW, 0.05f, false, 1, 4, 1e-4)]
    [TestCase(OptimizerKind.Adafactor, 0.3f, true, 1, 4, 1e-4)]
    [TestCase(OptimizerKind.Sgd, 1f, false, 1, 4, 1e-4, 0.05f)]    // clipping active: each prompt clips its own gradient
    [TestCase(OptimizerKind.AdamW, 0.05f, true, 2, 4, 1e-4, 0.05f)]
    public void AnEnsembleOfTwoEndsWhereTwoSeparateRunsEnd(OptimizerKind optimizer, float lr, bool shuffle, int accumulation, int steps, double relative, float clipNorm = 0f)
    {
        using var model = DemoModel.Open();
        var engine = model.Engine;
        int width = model.Engine.EmbeddingSize, size = PromptLength * width;
        float[] a = Init(5, width), b = Init(6, width);
        var options = new TrainOptions(steps, 8, lr, new OptimizerSettings(optimizer, WeightDecay: 0.01f, ClipNorm: clipNorm), Seed: 3, Shuffle: shuffle) { GradientAccumulation = accumulation };

        engine.LoadPrompts([.. a, .. b], 2, PromptLength);
        var result = new TrainingRun(engine, Train, options with { Ensemble = 2 }).Run();
        var together = ReadAll(engine);
        var norms = new float[2];
        engine.ReadGradientNorms(norms);
        if (clipNorm > 0) Assert.That(norms, Has.All.GreaterThan(clipNorm), "the last step clipped both prompts");
        var first = RunSingle(engine, a, options);
        var second = RunSingle(engine, b, options);

        Assert.That(result.Step, Is.EqualTo(steps));
        foreach (var (k, init, alone) in new[] { (0, a, first), (1, b, second) })
        {
            var mine = together.AsSpan(k * size, size).ToArray();
            double moved = alone.Zip(init, (x, y) => Math.Abs(x - y)).Max();
            double worst = mine.Zip(alone, (x, y) => Math.Abs(x - y)).Max();
            Assert.That(moved, Is.GreaterThan(1e-2), "the prompts moved");
            Assert.That(worst, Is.LessThan(relative * moved), $"prompt {k} = the separate run from its init (moved {moved:E2})");
        }
    }

    [Test]
    public void EnsembleMemberKStartsFromTheSeedPlusK()
    {
        var table = TestModels.RandomPrompts<float>(23 * 8, seed: 1);
        var sources = new InitSources { Seed = 7, TrainingData = Train };
        var values = PromptInitializer.CreateEnsemble(InitSpec.SampledVocab, 3, PromptLength, table, 8, sources);
        for (int k = 0; k < 3; k++)
            Assert.That(values.AsSpan(k * PromptLength * 8, PromptLength * 8).ToArray(),
                Is.EqualTo(PromptInitializer.Create(InitSpec.SampledVocab, PromptLength, table, 8, sources with { Seed = 7 + k })), $"prompt {k}");
        var e = Assert.Throws<ArgumentException>(() => PromptInitializer.CreateEnsemble(new InitSpec(InitKind.Text, "1 2"), 2, PromptLength, table, 8,
            sources with { Tokenizer = DemoModel.Tokenizer() }));
        Assert.That(e!.Message, Does.Contain("prompts 0 and 1 start identical"));
    }

    /// <summary>
    /// One SGD step with clipping, prompts of different lengths: prompt k moves by lr·g_k·min(1, c/‖g_k‖) with its own
    /// norm, on every device (the device optimizer launches per prompt; the CPU engine loops over them).
    /// </summary>
    [Category("Slow")]
    [TestCase("cpu", OptimizerKind.Sgd)]
    [TestCase("cuda-emulated", OptimizerKind.Sgd)]
    [TestCase("cuda-emulated", OptimizerKind.AdamW)]
    [TestCase("cuda-emulated", OptimizerKind.Adafactor)]
    public void EachPromptIsClippedByItsOwnNorm(string device, OptimizerKind optimizer)
    {
        if (device == "cuda-emulated" && !SoftPrompt.Cuda.Emulation.EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? "emulator not built");
        using var model = EngineFactory.Open(DemoModel.Directory, device);
        using var reference = DemoModel.Open();
        var engine = model.Engine;
        int width = engine.EmbeddingSize;
        var layout = new PromptLayout([3, 6, 2]);
        var values = TestModels.RandomPrompts<float>(layout.ValueCount(width), seed: 4);
        var rows = Train.Take(6).ToList();
        var batch = new TokenBatch(rows.Count, rows.Max(r => r.Length), layout);
        batch.Reset(rows.Max(r => r.Length));
        for (int i = 0; i < rows.Count; i++) batch.AddRow(rows[i].Input, rows[i].Target, i % 3);

        engine.LoadPrompts(values, layout);
        engine.ForwardBackward(batch);
        var gradient = new float[values.Length];
        engine.ReadPromptGradient(gradient);
        var expectedNorms = new float[3];
        for (int k = 0; k < 3; k++)
            expectedNorms[k] = MathF.Sqrt(gradient.AsSpan(layout.Offset(k) * width, layout.Length(k) * width).ToArray().Sum(g => g * g));
        float clip = expectedNorms.Order().ElementAt(1);  // clips the largest, leaves the smallest alone
        var settings = new OptimizerSettings(optimizer, ClipNorm: clip);
        engine.OptimizerStep(settings, 1, 0.5f);
        var norms = new float[3];
        engine.ReadGradientNorms(norms);
        Assert.That(norms, Is.EqualTo(expectedNorms).Within(1e-5f * expectedNorms.Max()), "each prompt's own norm");
        Assert.That(engine.LastGradientNorm, Is.EqualTo(MathF.Sqrt(expectedNorms.Sum(n => n * n))).Within(1e-5f * expectedNorms.Max()), "the global norm");
        var stepped = new float[values.Length];
        engine.ReadPrompts(stepped);

        // The CPU engine's optimizer, fed the same gradient, is the reference; for SGD the update is also written out.
        var expected = new float[values.Length];
        if (optimizer == OptimizerKind.Sgd)
        {
            for (int k = 0; k < 3; k++)
            {
                float factor = expectedNorms[k] > clip ? clip / expectedNorms[k] : 1f;
                for (int i = layout.Offset(k) * width; i < (layout.Offset(k) + layout.Length(k)) * width; i++)
                    expected[i] = values[i] - 0.5f * gradient[i] * factor;
            }
        }
        else
        {
            var cpu = (CpuGpt2Engine<float>)reference.Engine;
            cpu.LoadPrompts(values, layout);
            cpu.ForwardBackward(batch);
            cpu.OptimizerStep(settings, 1, 0.5f);
            cpu.ReadPrompts(expected);
        }
        float moved = stepped.Zip(values, (x, y) => Math.Abs(x - y)).Max();
        Assert.That(moved, Is.GreaterThan(1e-3f), "the step moved the prompts");
        for (int i = 0; i < values.Length; i++)
            Assert.That(stepped[i], Is.EqualTo(expected[i]).Within(1e-4f * moved), $"value {i}");
    }

    [Test]
    public void TheEngineMustHoldOnePromptPerEnsembleMember()
    {
        using var model = DemoModel.Open();
        model.Engine.LoadPrompts(Init(1, model.Engine.EmbeddingSize), 1, PromptLength);
        var e = Assert.Throws<InvalidOperationException>(() => new TrainingRun(model.Engine, Train, new TrainOptions(1, 2, 0.1f, new OptimizerSettings(OptimizerKind.Sgd)) { Ensemble = 2 }));
        Assert.That(e!.Message, Does.Contain("holds 1 prompts").And.Contain("ensemble of 2"));
    }

    [Test]
    public void AnEnsembleCheckpointRoundTripsItsPrompts()
    {
        string path = Path.Combine(Path.GetTempPath(), $"softprompt-ens-{Guid.NewGuid():N}.safetensors");
        var prompts = Enumerable.Range(0, 3 * 2 * 5).Select(i => (float)i).ToArray();
        var best = new BestPrompt(2, new DevMetrics("accuracy", new Dictionary<string, double> { ["accuracy"] = 1, ["loss"] = 0.5 }), [.. prompts.Reverse()]);
        try
        {
            new TrainingCheckpoint(4, 2, 5, prompts, new float[60], new SamplerPosition(0, 8), best, 0, new Dictionary<string, string>(), new Dictionary<string, string>())
            { PromptCount = 3 }.Save(path);
            var loaded = TrainingCheckpoint.Load(path);
            Assert.That(loaded.PromptCount, Is.EqualTo(3));
            Assert.That(loaded.Prompt, Is.EqualTo(prompts));
            Assert.That(loaded.Best!.Values, Is.EqualTo(best.Values));
            Assert.That(loaded.PromptMetadata, Does.Not.ContainKey("prompt_count"));
        }
        finally { File.Delete(path); }
    }
}
