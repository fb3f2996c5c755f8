using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SoftPrompt.Cpu;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt bench`: training-step throughput of a model or a named shape (random weights) on a device.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Hugging Face checkpoint directory" };
        var shape = new Option<string?>("--shape") { Description = string.Join(" | ", ShapeNames) + " (random weights; T5 shapes are v1.1/LM-adapted, Llama shapes fp32 copies of the published configs)" };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 16 }.Positive();
        var seq = new Option<int>("--seq-len") { Description = "Tokens per row after the prompt (T5: encoder input tokens)", DefaultValueFactory = _ => 256 }.Positive();
        var promptLength = new Option<int>("--prompt-length") { DefaultValueFactory = _ => 100 }.NonNegative();
        var targets = new Option<int?>("--targets") { Description = $"Target tokens per row (default: all but the first token, i.e. language modelling; T5: decoder target tokens, default {DefaultT5Targets})" }.Positive();
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 10 }.Positive();
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 2 }.NonNegative();
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var engineFlags = new EngineFlags(reversePass: true, plans: true);
        var ensemble = new Option<int>("--ensemble") { Description = "Train K prompts per step as `train --ensemble K` does: every row once per prompt (batch × K rows)", DefaultValueFactory = _ => 1 }.Positive();
        var plan = new Option<bool>("--plan") { Description = "Print the device memory a CUDA engine would allocate for this shape (weights, activations, workspace, prompts) without allocating or loading weights" };
        var decode = new Option<bool>("--decode") { Description = "Measure greedy generation instead of training: every row generates --new-tokens tokens (--steps: how many generations to average)" };
        var newTokens = new Option<int>("--new-tokens") { Description = "With --decode: tokens generated per row", DefaultValueFactory = _ => 128 }.Positive();
        var noCache = new Option<bool>("--no-cache") { Description = "With --decode: re-run every sequence at each step instead of using the KV cache" };
        var profile = new Option<bool>("--profile") { Description = "Also print where a step's time goes: CPU engines by kind of op (GEMMs, attention, norms, activations, LM head …); device engines per kernel, GEMM shape and copy, timed with CUDA events in extra steps after the timed ones" };
        var command = new Command("bench", "Measure prompt-tuning steps (tokens/s, ms/step, TFLOP/s, memory) or, with --decode, generation")
        {
            model, shape, batch, seq, promptLength, targets, steps, warmup, json, ensemble, plan, decode, newTokens, noCache, profile,
        };
        engineFlags.AddTo(command);
        command.SetAction(r => CliErrors.Run(() => r.GetValue(decode)
            ? RunDecode(r.GetValue(model), r.GetValue(shape), r.GetValue(batch), r.GetValue(seq), r.GetValue(promptLength), r.GetValue(newTokens), r.GetValue(steps),
                !r.GetValue(noCache), engineFlags.ReadDevice(r), r.GetValue(json), engineFlags.ReadPrecision(r))
            : Run(r.GetValue(model), r.GetValue(shape), r.GetValue(batch), r.GetValue(seq), r.GetValue(promptLength),
                r.GetValue(targets), r.GetValue(steps), r.GetValue(warmup), engineFlags.ReadDevice(r), r.GetValue(json), engineFlags.Read(r),
                r.GetValue(ensemble), r.GetValue(plan) ? engineFlags.DeviceBytes(r) : null, r.GetValue(profile))));
        return command;
    }

    private const int DefaultT5Targets = 32;

    private static IEnumerable<string> ShapeNames => ModelFamily.All.SelectMany(f => f.ShapeNames);

    /// <param name="planForBytes">Print the device memory plan for a GPU of this many bytes (long.MaxValue: unlimited) instead of running; null to run.</param>
    private static int Run(string? modelDir, string? shapeName, int batchSize, int seqLen, int promptLength, int? targetsPerRow, int steps, int warmup, string device, bool json,
        EngineOptions options, int ensemble, long? planForBytes, bool profile)
    {
        var precision = options.Precision;
        if ((modelDir is null) == (shapeName is null)) throw new ArgumentException("Give exactly one of --model DIR or --shape NAME.");
        if (ensemble <= 0) throw new ArgumentException($"--ensemble must be positive, got {ensemble}.");
        var c = modelDir is null ? ShapeConfig(shapeName!) : ModelFamily.Detect(modelDir).LoadConfig(modelDir);
        // Decoder-only rows are [prompt, tokens] with the last targets as labels; encoder-decoder rows feed
        // prompt + seq-len tokens to the encoder and a separate run of targets to the decoder.
        bool encoderDecoder = c.Family.IsEncoderDecoder;
        if (!encoderDecoder && targetsPerRow > seqLen)
            throw new ArgumentException($"--targets {targetsPerRow} exceeds --seq-len {seqLen}: a decoder-only row's targets are among its tokens.");
        int targetCount = encoderDecoder ? targetsPerRow ?? DefaultT5Targets : Math.Max(targetsPerRow ?? seqLen - 1, 1);
        if (targetCount <= 0) throw new ArgumentException($"--targets must be positive (got {targetCount}).");
        int inputTokens = encoderDecoder ? seqLen : seqLen - targetCount;
        int rowTokens = inputTokens + targetCount;
        int encoderPositions = promptLength + inputTokens;
        if (encoderDecoder ? Math.Max(encoderPositions, targetCount) > c.MaxPositions : promptLength + seqLen > c.MaxPositions)
            throw new ArgumentException($"prompt {promptLength} + {seqLen} tokens{(encoderDecoder ? $" (or {targetCount} targets)" : "")} exceed the model's limit of {c.MaxPositions} positions.");
        var random = new Random(3);
        var batch = new TokenBatch(batchSize * ensemble, rowTokens, promptLength);
        batch.Reset(rowTokens);
        var ids = new int[rowTokens];
        for (int row = 0; row < batchSize; row++)
        {
            for (int i = 0; i < rowTokens; i++) ids[i] = random.Next(c.VocabSize);
            for (int k = 0; k < ensemble; k++) batch.AddRow(ids.AsSpan(0, inputTokens), ids.AsSpan(inputTokens), k);
        }
        string shapeText = encoderDecoder
            ? string.Create(CultureInfo.InvariantCulture, $"batch {batchSize} × (encoder: prompt {promptLength} + {seqLen} tokens; decoder: {targetCount} targets)")
            : string.Create(CultureInfo.InvariantCulture, $"batch {batchSize}{(ensemble > 1 ? $" × {ensemble} prompts" : "")} × (prompt {promptLength} + {seqLen} tokens), {targetCount} targets/row");
        if (planForBytes is { } deviceBytes) return PrintPlan(modelDir ?? shapeName!, c, batch, PromptLayout.Uniform(ensemble, promptLength), shapeText, json, options, deviceBytes);

        using var loaded = Load(modelDir, shapeName, device, options);
        var engine = loaded.Engine;
        var prompt = new float[ensemble * promptLength * c.Embedding];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (float)(random.NextDouble() - 0.5);
        engine.LoadPrompts(prompt, ensemble, promptLength);
        var optimizer = new OptimizerSettings(OptimizerKind.AdamW);
        for (int s = 1; s <= warmup; s++) { engine.ForwardBackward(batch); engine.OptimizerStep(optimizer, s, 1e-3f, ensemble); }
        _ = engine.LastGradientNorm;
        var deviceEngine = engine as IDeviceEngine;
        CpuOpTimes.Reset();
        CpuOpTimes.Enabled = profile && deviceEngine is null;
        var clock = Stopwatch.StartNew();
        float loss = 0;
        for (int s = 1; s <= steps; s++) { loss = engine.ForwardBackward(batch); engine.OptimizerStep(optimizer, warmup + s, 1e-3f, ensemble); }
        _ = engine.LastGradientNorm;
        double seconds = clock.Elapsed.TotalSeconds;
        var opTimes = CpuOpTimes.Enabled ? OpTimesPerStep(msPerStep: 1000 * seconds / steps, steps) : null;
        CpuOpTimes.Enabled = false;
        // After the timing, so event records never touch the figures above.
        var deviceProfile = profile && deviceEngine is not null
            ? DeviceStepProfile.Measure(deviceEngine, batch, optimizer, firstStep: warmup + steps + 1, ensemble, Math.Min(steps, DeviceStepProfile.MaxSteps))
            : null;
        double msPerStep = 1000 * seconds / steps;
        // Every position a stack runs over: prompt + tokens, and for T5 the decoder's target positions too.
        int positions = promptLength + rowTokens, rows = batchSize * ensemble;
        double tokensPerSecond = (double)rows * positions * steps / seconds;
        long targetTotal = (long)rows * targetCount;
        double flops = c is T5Config t5
            ? t5.TrainingStepFlops(rows, encoderPositions, targetCount, targetTotal)
            : c.TrainingStepFlops(rows, positions, targetTotal);
        double tflops = flops * steps / seconds / 1e12;
        long memory = MemoryUsed(engine);
        var inv = CultureInfo.InvariantCulture;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["model"] = loaded.Directory, ["family"] = loaded.Family.Name, ["device"] = engine.DeviceName, ["device_description"] = Describe(engine),
                ["batch_size"] = batchSize, ["seq_len"] = seqLen, ["prompt_length"] = promptLength, ["targets_per_row"] = targetCount,
                ["steps"] = steps, ["ms_per_step"] = msPerStep, ["tokens_per_second"] = tokensPerSecond, ["tflops"] = tflops,
                ["memory_bytes"] = memory, ["loss"] = loss, ["precision"] = precision.ToString().ToLowerInvariant(), ["tf32"] = precision == Precision.Tf32, ["ensemble"] = ensemble, ["ms_per_prompt_step"] = msPerStep / ensemble,
                ["recomputes"] = engine is DeviceEngine { RecomputesActivations: true },
                ["ms_per_step_by_op"] = opTimes is null ? null! : opTimes.ToDictionary(o => o.Name, o => o.Ms),
                ["profile"] = deviceProfile?.JsonRows()!,
                ["profile_steps"] = deviceProfile?.Profile.Steps!,
                ["profile_ms_per_step"] = deviceProfile?.WallMilliseconds!,
                ["profile_ops_ms_per_step"] = deviceProfile?.Profile.OpMilliseconds!,
            }.Where(e => e.Value is not null).ToDictionary()));
        }
        else
        {
            Console.WriteLine($"{loaded.Directory} on {Describe(engine)}");
            Console.WriteLine($"{shapeText}, {steps} steps{(engine is DeviceEngine { RecomputesActivations: true } ? ", each layer recomputed in the reverse pass" : "")}");
            Console.WriteLine(string.Create(inv, $"{msPerStep:F2} ms/step{(ensemble > 1 ? $" ({msPerStep / ensemble:F2} ms per prompt)" : "")}  {tokensPerSecond:F0} tokens/s  {tflops:F2} TFLOP/s  memory {memory / 1048576.0:F0} MiB  loss {loss:F3}"));
            foreach (var (name, ms, calls) in opTimes ?? [])
                Console.WriteLine(string.Create(inv, $"  {name,-11}{ms,10:F2} ms/step  {ms / msPerStep,6:P0}{(calls > 0 ? $"  {calls:F0} calls/step" : "")}"));
            deviceProfile?.Print(Console.Out, msPerStep);
        }
        return 0;
    }

    /// <summary>Each kind of op's share of a step, and "other" for the engine's own glue (residual adds, copies) between them.</summary>
    private static List<(string Name, double Ms, double Calls)> OpTimesPerStep(double msPerStep, int steps)
    {
        var ops = CpuOpTimes.Totals().Select(t => (Name: t.Op.ToString().ToLowerInvariant(), Ms: t.Time.TotalMilliseconds / steps, Calls: (double)t.Calls / steps)).ToList();
        ops.Add(("other", msPerStep - ops.Sum(o => o.Ms), 0));
        return ops;
    }

    private static int RunDecode(string? modelDir, string? shapeName, int batchSize, int seqLen, int promptLength, int newTokens, int repeats, bool useCache,
        string device, bool json, Precision precision)
    {
        if ((modelDir is null) == (shapeName is null)) throw new ArgumentException("Give exactly one of --model DIR or --shape NAME.");
        if (batchSize <= 0 || seqLen <= 0 || promptLength < 0) throw new ArgumentException("--batch-size and --seq-len must be positive, --prompt-length not negative.");
        using var loaded = Load(modelDir, shapeName, device, new EngineOptions(precision));
        string shapeText = string.Create(CultureInfo.InvariantCulture, $"batch {batchSize} × (prompt {promptLength} + {seqLen} tokens)");
        return DecodeBench.Run(loaded, shapeText, batchSize, seqLen, promptLength, newTokens, repeats, useCache, json);
    }

    /// <summary>The device memory the CUDA engine would allocate, by kind, from the engine's own plan declarations (nothing allocated, no weights read).</summary>
    private static int PrintPlan(string name, IModelConfig config, TokenBatch batch, PromptLayout layout, string shapeText, bool json, EngineOptions options, long deviceBytes)
    {
        var plan = DeviceMemoryPlan.Measure(config, batch, layout, options.Precision, options.Recomputation, deviceBytes);
        var kinds = Enum.GetValues<DeviceMemoryKind>();
        bool limited = deviceBytes != long.MaxValue;
        bool fits = plan.TotalBytes + RecomputationPolicy.HeadroomBytes <= deviceBytes;
        if (json)
        {
            var fields = new Dictionary<string, object> { ["model"] = name, ["family"] = config.Family.Name, ["rows"] = batch.Rows, ["total_bytes"] = plan.TotalBytes,
                ["precision"] = options.Precision.ToString().ToLowerInvariant(), ["recomputes"] = plan.Recomputes };
            foreach (var kind in kinds) fields[$"{Snake(kind)}_bytes"] = plan.BytesOf(kind);
            if (limited) { fields["device_bytes"] = deviceBytes; fields["fits"] = fits; }
            Console.WriteLine(JsonSerializer.Serialize(fields));
            return 0;
        }
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"{name}: device memory for {shapeText} (measured, not allocated), {options.Precision.ToString().ToLowerInvariant()}, " +
            (plan.Recomputes ? "each layer recomputed in the reverse pass" : "every layer's activations kept"));
        foreach (var kind in kinds) Console.WriteLine(string.Create(inv, $"  {Snake(kind).Replace('_', ' '),-13}{plan.BytesOf(kind) / 1048576.0,12:F1} MiB"));
        Console.WriteLine(string.Create(inv, $"  {"total",-13}{plan.TotalBytes / 1048576.0,12:F1} MiB  ({plan.TotalBytes} bytes)"));
        if (limited)
            Console.WriteLine(string.Create(inv, $"  {(fits ? "fits" : "does not fit")} a GPU with {deviceBytes / (double)(1L << 30):F2} GiB (with {RecomputationPolicy.HeadroomBytes >> 20} MiB left for cuBLAS and the driver)"));
        return 0;
    }

    private static string Snake(DeviceMemoryKind kind) => kind switch
    {
        DeviceMemoryKind.PromptState => "prompt_state",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static IModelConfig ShapeConfig(string shapeName) =>
        ModelFamily.OfShape(shapeName)?.Shape(shapeName) ?? throw new ArgumentException($"Unknown shape '{shapeName}'; choose one of: {string.Join(", ", ShapeNames)}.");

    private static LoadedModel Load(string? modelDir, string? shapeName, string device, EngineOptions options)
    {
        if (shapeName is null) return EngineFactory.Open(modelDir!, device, options);
        return ModelFamily.OfShape(shapeName)!.OpenShape(shapeName, device, options); // random weights, after checking the device
    }

    private static string Describe(IPromptEngine engine) => engine switch
    {
        IDeviceEngine cuda => cuda.Device.Description,
        _ => "cpu",
    };

    private static long MemoryUsed(IPromptEngine engine) => engine switch
    {
        IDeviceEngine { Device: CudaDevice gpu } => gpu.MemoryInfo.UsedBytes,
        IDeviceEngine { Device: EmulatedDevice emulated } => emulated.AllocatedBytes,
        _ => Environment.WorkingSet,
    };
}
