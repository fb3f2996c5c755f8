using System.CommandLine;
using SoftPrompt.Cli.Output;
using SoftPrompt.Engines;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Training;

/// <summary>
/// The `train` flags and how they resolve: an explicit flag wins, then the --recipe's value, then the built-in
/// default. Flags a recipe may set are nullable so that "given" and "defaulted" can be told apart.
/// </summary>
internal sealed class TrainFlags
{
    public readonly Option<string> Model = new("--model") { Description = "Hugging Face checkpoint directory", Required = true };
    public readonly Option<string> Data = new("--data") { Description = "Training data: pre-tokenized JSONL {\"input_ids\",\"target_ids\"}, or text .jsonl/.csv/.tsv/.parquet with the column flags", Required = true };
    public readonly Option<string?> Dev = new("--dev") { Description = "Dev data (same format): evaluated every --eval-every steps; the best prompt is kept" };
    public readonly Option<string> Output = new("--out") { Description = "Where the prompt goes (.safetensors): the best on dev when --dev is given (the last one then goes to OUT.last.safetensors), else the last", Required = true };
    public readonly EngineFlags Engine = new(reversePass: true);
    public readonly Option<string?> Recipe = new("--recipe") { Description = "Defaults from a paper: lester2021 (P=100, class-labels init, Adafactor lr 0.3 constant, batch 32, decay 1−t^−0.8, update clip 1, wd 1e-5, 30k steps, best on dev); explicit flags override" };

    public readonly Option<int?> PromptLength = new("--prompt-length") { Description = $"Prompt vectors P (default {PromptInitializer.DefaultLength}, or the --init file's length)" };
    public readonly Option<string?> Init = new("--init") { Description = "random-uniform (±0.5; alias random) | sampled-vocab | class-labels | text:\"…\" | FILE.safetensors (default random-uniform)" };
    public readonly Option<bool> FrequencyOrdered = new("--vocab-is-frequency-ordered") { Description = "sampled-vocab draws from ids 0..4999 (SentencePiece vocabularies ordered by frequency) instead of the training data's 5,000 most frequent tokens" };

    public readonly Option<int?> Steps = new("--steps") { Description = "Optimizer steps (default 100)" };
    public readonly Option<int?> BatchSize = new("--batch-size") { Description = "Rows per micro-batch (default 8)" };
    public readonly Option<int?> GradAccum = new("--grad-accum") { Description = "Micro-batches per optimizer step (default 1); each weighted by its target tokens, so a step equals one batch of K×B rows" };
    public readonly Option<float?> LearningRate = new("--lr") { Description = "Peak learning rate (default 0.3)" };
    public readonly Option<string?> Optimizer = new("--optimizer") { Description = "adafactor | adamw | sgd (default adamw)" };
    public readonly Option<string?> Schedule = new("--schedule") { Description = "constant | linear (default constant); both as transformers' *_schedule_with_warmup" };
    public readonly Option<int?> WarmupSteps = new("--warmup-steps") { Description = "Linear warmup from 0 over this many steps (default 0)" };
    public readonly Option<float?> ClipNorm = new("--clip-norm") { Description = "Clip the gradient's global L2 norm (0 = off)" };
    public readonly Option<float?> WeightDecay = new("--weight-decay") { Description = "Decoupled weight decay (AdamW, Adafactor) or L2 (SGD)" };
    public readonly Option<float?> UpdateClip = new("--update-clip") { Description = "Adafactor: clip the update's RMS at this threshold (default 1.0)" };
    public readonly Option<float?> DecayRate = new("--decay-rate") { Description = "Adafactor: second-moment decay 1 − t^rate (default −0.8)" };
    public readonly Option<int> Seed = new("--seed") { Description = "Seed for initialisation and shuffling", DefaultValueFactory = _ => 0 };
    public readonly Option<bool> NoShuffle = new("--no-shuffle") { Description = "Take rows in file order" };
    public readonly Option<bool> LengthBuckets = new("--length-buckets") { Description = "Batch rows of similar length together (less padding)" };
    public readonly Option<int> Ensemble = new("--ensemble")
    {
        Description = "Train K prompts at once (prompt k initialised with seed SEED+k; all see the batches of --seed), every example once per prompt " +
            "in one forward and reverse pass; writes OUT.k0.safetensors … OUT.k{K-1}.safetensors and, with --dev, the ensemble's dev score. --clip-norm clips each prompt's own gradient",
        DefaultValueFactory = _ => 1,
    };

    public readonly Option<int?> EvalEvery = new("--eval-every") { Description = "Evaluate on --dev every N steps (default steps/10) and at the end" };
    public readonly Option<int> EvalBatchSize = new("--eval-batch-size") { Description = "Rows per evaluation batch", DefaultValueFactory = _ => 32 };
    public readonly Option<int?> Patience = new("--early-stopping-patience") { Description = "Stop after N evaluations without a better dev score (default: never)" };
    public readonly Option<string?> CheckpointDir = new("--checkpoint-dir") { Description = "Write resumable checkpoints here (prompt, optimizer state, step, data position, best so far)" };
    public readonly Option<int?> CheckpointEvery = new("--checkpoint-every") { Description = "Checkpoint every N steps (default: --eval-every, or steps/10) and at the end" };
    public readonly Option<int> KeepLast = new Option<int>("--keep-last") { Description = "Keep the newest K checkpoints (0 = all)", DefaultValueFactory = _ => 3 }.NonNegative();
    public readonly Option<bool> Resume = new("--resume") { Description = "Continue from the newest checkpoint in --checkpoint-dir (exactly: same batches, same updates)" };

    public readonly Option<string?> Metrics = new("--metrics") { Description = "Metrics log (JSONL: step, loss, lr, grad norm, tokens/s, dev metrics); default OUT.metrics.jsonl" };
    public readonly Option<string?> Plot = new("--plot") { Description = "PNG of the loss and dev curves; default OUT.curves.png" };
    public readonly Option<bool> NoPlot = new("--no-plot") { Description = "Do not draw the curves" };
    public readonly Option<bool> Json = new("--json") { Description = "Print one JSON document with the results on stdout (progress goes to stderr)" };
    public readonly Option<bool> DryRun = new("--dry-run") { Description = "Join the process group (mpirun/srun), print its layout and each rank's share of a batch, and exit without training" };
    public readonly Option<string> Progress = new("--progress") { Description = "auto (live on a terminal, plain lines otherwise) | live | plain | off", DefaultValueFactory = _ => "auto" };

    public readonly DataOptions DataFlags = new();

    public TrainFlags()
    {
        Optimizer.AcceptOnlyFromAmong("sgd", "adamw", "adafactor");
        Schedule.AcceptOnlyFromAmong("constant", "linear");
        Progress.AcceptOnlyFromAmong(ProgressModes.Names);
        Recipe.AcceptOnlyFromAmong([.. TrainRecipe.All.Select(r => r.Name)]);
    }

    public IEnumerable<Option> All =>
    [
        Model, Data, Dev, Output, .. Engine.All, Recipe, PromptLength, Init, FrequencyOrdered, Steps, BatchSize, GradAccum, LearningRate, Optimizer,
        Schedule, WarmupSteps, ClipNorm, WeightDecay, UpdateClip, DecayRate, Seed, NoShuffle, LengthBuckets, Ensemble, .. DataFlags.All, EvalEvery, EvalBatchSize,
        Patience, CheckpointDir, CheckpointEvery, KeepLast, Resume, Metrics, Plot, NoPlot, Json, Progress, DryRun,
    ];

    public TrainPlan Resolve(ParseResult r)
    {
        var recipe = r.GetValue(Recipe) is string name ? TrainRecipe.Find(name) : null;
        string output = r.GetValue(Output)!;
        string? dev = r.GetValue(Dev);
        var init = r.GetValue(Init) is string spec ? InitSpec.Parse(spec) : recipe?.Init ?? InitSpec.RandomUniform;
        // A file init brings its own length; the recipe's P applies to inits that build a prompt.
        int? promptLength = r.GetValue(PromptLength) ?? (init.Kind == InitKind.File ? null : recipe?.PromptLength);
        int steps = r.GetValue(Steps) ?? recipe?.Steps ?? 100;
        string optimizerName = r.GetValue(Optimizer) ?? recipe?.Optimizer.ToString().ToLowerInvariant() ?? "adamw";
        var defaults = new OptimizerSettings(OptimizerKind.Adafactor);
        var optimizer = new OptimizerSettings(optimizerName switch { "sgd" => OptimizerKind.Sgd, "adafactor" => OptimizerKind.Adafactor, _ => OptimizerKind.AdamW },
            WeightDecay: r.GetValue(WeightDecay) ?? recipe?.WeightDecay ?? 0f,
            ClipNorm: r.GetValue(ClipNorm) ?? 0f,
            DecayRate: r.GetValue(DecayRate) ?? recipe?.DecayRate ?? defaults.DecayRate,
            ClipThreshold: r.GetValue(UpdateClip) ?? recipe?.ClipThreshold ?? defaults.ClipThreshold);
        var schedule = LearningRateSchedule.Parse(r.GetValue(Schedule) ?? (recipe?.Schedule == ScheduleKind.Linear ? "linear" : "constant"), r.GetValue(WarmupSteps) ?? 0);

        int? evalEvery = r.GetValue(EvalEvery);
        if (dev is null)
        {
            if (recipe is { NeedsDev: true })
                throw new ArgumentException($"--recipe {recipe.Name} picks the prompt by its dev score: give --dev FILE.");
            if (evalEvery is not null || r.GetValue(Patience) is not null)
                throw new ArgumentException("--eval-every and --early-stopping-patience evaluate on dev data: give --dev FILE.");
        }
        int resolvedEvalEvery = dev is null ? 0 : evalEvery ?? recipe?.EvalEvery ?? Math.Max(1, steps / 10);
        string? checkpointDir = r.GetValue(CheckpointDir);
        RefuseIgnoredFlags(r, checkpointDir);
        bool resume = r.GetValue(Resume);
        if (resume && checkpointDir is null) throw new ArgumentException("--resume continues from --checkpoint-dir: give the directory the run checkpointed to.");

        string stem = TrainPlan.Stem(output);
        bool json = r.GetValue(Json);
        return new TrainPlan
        {
            Model = r.GetValue(Model)!,
            Data = r.GetValue(Data)!,
            Dev = dev,
            Output = output,
            LastOutput = dev is null ? null : stem + ".last.safetensors",
            Device = Engine.ReadDevice(r),
            Precision = Engine.ReadPrecision(r),
            Recomputation = Engine.Read(r).Recomputation,
            Recipe = recipe,
            PromptLength = promptLength,
            Init = init,
            InitFromRecipe = r.GetValue(Init) is null && recipe is not null,
            VocabIsFrequencyOrdered = r.GetValue(FrequencyOrdered),
            OptimizerName = optimizerName,
            Options = new TrainOptions(steps, r.GetValue(BatchSize) ?? recipe?.BatchSize ?? 8, r.GetValue(LearningRate) ?? recipe?.LearningRate ?? 0.3f,
                optimizer, r.GetValue(Seed), !r.GetValue(NoShuffle))
            {
                Schedule = schedule,
                GradientAccumulation = r.GetValue(GradAccum) ?? 1,
                LengthBuckets = r.GetValue(LengthBuckets),
                EvalEvery = resolvedEvalEvery,
                EarlyStoppingPatience = r.GetValue(Patience) ?? 0,
                CheckpointEvery = checkpointDir is null ? 0 : r.GetValue(CheckpointEvery) ?? (resolvedEvalEvery > 0 ? resolvedEvalEvery : Math.Max(1, steps / 10)),
                Ensemble = r.GetValue(Ensemble),
            },
            Columns = DataFlags.Read(r),
            EvalBatchSize = r.GetValue(EvalBatchSize),
            CheckpointDir = checkpointDir,
            KeepLast = r.GetValue(KeepLast),
            Resume = resume,
            MetricsPath = r.GetValue(Metrics) ?? stem + ".metrics.jsonl",
            PlotPath = r.GetValue(NoPlot) ? null : r.GetValue(Plot) ?? stem + ".curves.png",
            Json = json,
            DryRun = r.GetValue(DryRun),
            Progress = ProgressModes.Resolve(ProgressModes.Parse(r.GetValue(Progress)!), toStandardError: json),
        };
    }

    /// <summary>Flags that would be silently ignored (or contradict each other) are refused: the user believes they did something.</summary>
    private void RefuseIgnoredFlags(ParseResult r, string? checkpointDir)
    {
        if (r.GetValue(NoPlot) && r.GetValue(Plot) is not null)
            throw new ArgumentException("--no-plot and --plot contradict each other: give one of them.");
        if (r.GetValue(LengthBuckets) && r.GetValue(NoShuffle))
            throw new ArgumentException("--length-buckets shuffles buckets of similar length; --no-shuffle takes rows in file order: give one of them.");
        if (checkpointDir is null && r.GetValue(CheckpointEvery) is not null)
            throw new ArgumentException("--checkpoint-every needs --checkpoint-dir (where the checkpoints go).");
        if (checkpointDir is null && r.GetResult(KeepLast) is { Implicit: false })
            throw new ArgumentException("--keep-last needs --checkpoint-dir (the checkpoints it keeps).");
    }
}

/// <summary>A `train` invocation with every default resolved.</summary>
internal sealed record TrainPlan
{
    public required string Model { get; init; }
    public required string Data { get; init; }
    public required string? Dev { get; init; }
    public required string Output { get; init; }
    /// <summary>Where the last prompt goes when --out holds the best one (runs with --dev).</summary>
    public required string? LastOutput { get; init; }

    public int Ensemble => Options.Ensemble;

    /// <summary>Where prompt <paramref name="k"/> of the run goes: --out itself, or OUT.k{k}.safetensors for an ensemble.</summary>
    public string PromptPath(int k) => Ensemble == 1 ? Output : $"{Stem(Output)}.k{k}.safetensors";

    /// <summary>Where the last prompt <paramref name="k"/> goes when --out holds the best (runs with --dev): OUT.last.safetensors, or OUT.k{k}.last.safetensors.</summary>
    public string? LastPromptPath(int k) => LastOutput is null ? null : Ensemble == 1 ? LastOutput : $"{Stem(Output)}.k{k}.last.safetensors";

    public static string Stem(string output) => output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? output[..^".safetensors".Length] : output;
    public required string Device { get; init; }
    public required Precision Precision { get; init; }
    public Recomputation Recomputation { get; init; }
    public required TrainRecipe? Recipe { get; init; }
    public required int? PromptLength { get; init; }
    public required InitSpec Init { get; init; }
    public required bool InitFromRecipe { get; init; }
    public required bool VocabIsFrequencyOrdered { get; init; }
    public required string OptimizerName { get; init; }
    public required TrainOptions Options { get; init; }
    public required DataRequest Columns { get; init; }
    public required int EvalBatchSize { get; init; }
    public required string? CheckpointDir { get; init; }
    public required int KeepLast { get; init; }
    public required bool Resume { get; init; }
    public required string MetricsPath { get; init; }
    public required string? PlotPath { get; init; }
    public required bool Json { get; init; }
    public bool DryRun { get; init; }
    public required ProgressMode Progress { get; init; }
}
