using System.Diagnostics;
using SoftPrompt.Checkpoints;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>
/// The training loop with its bookkeeping: learning-rate schedule, gradient accumulation, dev evaluation with
/// best-prompt selection and early stopping, checkpoints, and exact resumption.
/// <para>
/// Gradient accumulation: a step runs K micro-batches through ForwardBackward(accumulate), each weighted by its own
/// target count, and one optimizer update scaled by 1/(all targets of the K micro-batches): the gradient of ONE batch
/// of K×B rows (a mean over all its target tokens) whatever the micro-batches' sizes. A single micro-batch keeps
/// weight 1 and scale 1. The reported loss is token-weighted (Σ micro-batch loss × its targets / Σ targets), the
/// K×B batch's loss.
/// </para>
/// <para>
/// Resumption is exact: a checkpoint holds the prompt, the optimizer state, the step, the sampler position and the
/// best prompt; <see cref="Resume"/> restores all of them, so a run interrupted and resumed ends bit-identical to an
/// uninterrupted one (on a deterministic engine).
/// </para>
/// <para>
/// Ensembles (<see cref="TrainOptions.Ensemble"/> = K &gt; 1): the engine holds K prompts and every batch carries each
/// example once per prompt (B × K rows) through one forward and one reverse pass. The engine's loss is the mean over
/// all K·T target tokens (T per prompt, the same for every prompt), so prompt k's gradient is (1/K)·∇ of its own
/// mean loss; the step scales the gradient by K, and each prompt then takes exactly the update a single-prompt run on
/// the same batches would (AdamW and SGD are elementwise, Adafactor factors each prompt on its own). Global norm
/// clipping would couple the prompts, so <see cref="TrainOptions.Validate"/> refuses it. The reported loss is the mean
/// of the prompts' losses; the gradient norm is over all K prompts' (single-prompt-scaled) gradients. Dev evaluation
/// scores the ensemble (<see cref="DevEvaluator"/>) and the best step keeps all K prompts.
/// </para>
/// <para>
/// Data parallelism (a <see cref="IProcessGroup"/> of N &gt; 1 processes): every rank draws the same global batches and
/// runs its shard of each (<see cref="BatchShard"/>) with gradient weight = its target count, so its engine holds the
/// gradient of its shard's summed token losses; <see cref="GradientAllReduce"/> sums them (with targets, losses, tokens
/// and stop requests) and every rank takes the same optimizer step scaled by K/(all targets): the single-process step
/// on the global batch, up to float summation order. Rank 0's prompts, optimizer state, step and sampler position are
/// broadcast when the run starts, so only rank 0 needs to resume from a checkpoint. With dev data every rank needs a
/// <see cref="Dev"/> over the same rows whose <see cref="DevEvaluator.Processes"/> is the run's group: each scores its
/// share of the rows, all compute the same metrics from all of them, so they keep the same best prompt and stop early
/// together. Let rank 0 alone write checkpoints and observe.
/// </para>
/// </summary>
public sealed class TrainingRun : IDisposable
{
    private readonly IPromptEngine engine;
    private readonly IReadOnlyList<TokenizedExample> examples;
    private readonly TrainOptions options;
    private readonly BatchSampler sampler;
    private readonly int promptLength;
    private readonly IProcessGroup group;
    private readonly GradientAllReduce? allReduce;
    private bool joined;

    /// <param name="group">The processes that train together; null = this process alone.</param>
    /// <param name="allReduce">How the group sums gradients (the run disposes it); null = <see cref="GradientAllReduce.For"/> when the group has more than one process. Given for one process, the step takes the group path (the GPU test of NCCL at world size 1).</param>
    public TrainingRun(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, TrainOptions options, IProcessGroup? group = null, GradientAllReduce? allReduce = null)
    {
        options.Validate();
        if (engine.PromptCount == 0) throw new InvalidOperationException("Load the initial prompt into the engine before training.");
        if (engine.PromptCount != options.Ensemble)
            throw new InvalidOperationException($"The engine holds {engine.PromptCount} prompts but the run trains an ensemble of {options.Ensemble}; load one initial prompt per ensemble member.");
        var layout = engine.RequirePrompts();
        if (!layout.IsUniform)
            throw new InvalidOperationException($"A training run trains prompts of one length; the engine holds prompts of lengths {layout}.");
        this.engine = engine;
        this.examples = examples;
        this.options = options;
        promptLength = layout.MaxLength;
        this.group = group ?? SingleProcess.Instance;
        if (options.BatchSize < this.group.Size)
            throw new ArgumentException($"`TrainOptions.BatchSize` {options.BatchSize} is smaller than the {this.group.Size} processes that share each batch; raise it to at least {this.group.Size} or start fewer processes.");
        var shard = new BatchShard(this.group.Rank, this.group.Size);
        sampler = options.LengthBuckets
            ? new BatchSampler(examples, options.BatchSize, promptLength, new LengthBuckets(examples, options.BatchSize, options.Seed).NextEpoch, options.Ensemble) { Shard = shard }
            : new BatchSampler(examples, options.BatchSize, promptLength, options.Seed, options.Shuffle, options.Ensemble) { Shard = shard };
        this.allReduce = allReduce ?? (this.group.Size > 1 ? GradientAllReduce.For(this.group, engine, layout.ValueCount(engine.EmbeddingSize)) : null);
        Signature = RunSignature.Of(options, promptLength, examples);
    }

    /// <summary>Scores the prompt on dev data at the evaluation steps; null = no evaluation.</summary>
    public DevEvaluator? Dev { get; init; }
    /// <summary>Where checkpoints go; null = none.</summary>
    public CheckpointStore? Checkpoints { get; init; }
    /// <summary>Carried into every checkpoint (model fingerprint, init, …) so a checkpoint also reads as a prompt file.</summary>
    public IReadOnlyDictionary<string, string> PromptMetadata { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<string, string> Signature { get; }
    /// <summary>Optimizer steps done.</summary>
    public int Step { get; private set; }
    public BestPrompt? Best { get; private set; }
    public int EvaluationsSinceBest { get; private set; }

    /// <summary>The error for a loss that is not finite, naming its likely cause: the prompt diverged, or the model or initial prompt was never finite.</summary>
    private InvalidOperationException NonFiniteLoss(double loss, int step, bool updated)
    {
        var prompt = new float[engine.PromptLayout!.TotalLength * engine.EmbeddingSize];
        engine.ReadPrompts(prompt);
        bool promptFinite = Array.TrueForAll(prompt, float.IsFinite);
        float largest = promptFinite ? prompt.Max(MathF.Abs) : float.NaN;
        string cause = (promptFinite, updated) switch
        {
            (false, true) => "the prompt diverged in the updates before it; lower `TrainOptions.LearningRate` or set `OptimizerSettings.ClipNorm`",
            (false, false) => "the initial prompt holds values that are not finite; check `InitSpec` (a prompt file given as the init)",
            (true, false) => "the prompt is finite, so the model produced it: its weights hold NaN or infinity, or overflow at these inputs; check the checkpoint",
            (true, true) => $"the updates grew the prompt (largest |value| {largest:G3}) until the model overflowed, most likely; lower `TrainOptions.LearningRate` or set `OptimizerSettings.ClipNorm`",
        };
        return new InvalidOperationException($"Loss became {loss} at step {step}{(updated ? "" : ", before any update")}: {cause}.");
    }

    /// <summary>Continues from <paramref name="checkpoint"/>: prompt, optimizer state, step, data position and best prompt.</summary>
    public void Resume(TrainingCheckpoint checkpoint, string path)
    {
        if (Step != 0) throw new InvalidOperationException("Resume before running.");
        if (PromptMetadata.TryGetValue(PromptFile.FingerprintKey, out var model) && checkpoint.PromptMetadata.TryGetValue(PromptFile.FingerprintKey, out var saved) && model != saved)
            throw new CheckpointException($"{path}: the checkpoint was made with model {saved}, this run loads model {model}; resume with the run's `model`.");
        RunSignature.Check(checkpoint.Signature, Signature, path);
        if (checkpoint.PromptLength != promptLength || checkpoint.Width != engine.EmbeddingSize)
            throw new CheckpointException($"{path}: the checkpoint's prompt is [{checkpoint.PromptLength}, {checkpoint.Width}], this run's [{promptLength}, {engine.EmbeddingSize}].");
        if (checkpoint.PromptCount != options.Ensemble)
            throw new CheckpointException($"{path}: the checkpoint holds {checkpoint.PromptCount} prompts, this run trains {options.Ensemble}; resume with `TrainOptions.Ensemble` {checkpoint.PromptCount}.");
        if (checkpoint.Step > options.Steps)
            throw new CheckpointException($"{path}: the checkpoint is at step {checkpoint.Step}, past `TrainOptions.Steps` {options.Steps}; raise `TrainOptions.Steps` to train further.");
        engine.LoadPrompts(checkpoint.Prompt, checkpoint.PromptCount, checkpoint.PromptLength);
        if (checkpoint.OptimizerState.Length != engine.OptimizerStateLength)
            throw new CheckpointException($"{path}: optimizer state holds {checkpoint.OptimizerState.Length} values, the engine's {engine.OptimizerStateLength}; it was saved by another engine layout.");
        engine.LoadOptimizerState(checkpoint.OptimizerState);
        // Seek replays one shuffle per epoch: a position no run of this many steps can reach (edited or damaged metadata) would hang it.
        long drawn = (long)checkpoint.Step * options.BatchSize * options.GradientAccumulation;
        long reachable = drawn / sampler.ExampleCount + 1;
        if (checkpoint.Sampler.Epoch > reachable || checkpoint.Sampler.Cursor > sampler.ExampleCount)
            throw new CheckpointException($"{path}: the checkpoint's data position ({checkpoint.Sampler}) is past what {checkpoint.Step} steps of " +
                $"{options.BatchSize * options.GradientAccumulation} rows over {sampler.ExampleCount} examples can reach (epoch {reachable}); its metadata is damaged: resume from an earlier checkpoint or start over.");
        sampler.Seek(checkpoint.Sampler);
        Step = checkpoint.Step;
        Best = checkpoint.Best;
        EvaluationsSinceBest = checkpoint.EvaluationsSinceBest;
    }

    /// <summary>
    /// Trains up to <see cref="TrainOptions.Steps"/>. Cancellation is honoured between steps; with a checkpoint store
    /// the run then writes a checkpoint of the step it reached, so it can be resumed exactly.
    /// </summary>
    public TrainResult Run(ITrainingObserver? observer = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        if (allReduce is not null && !joined) JoinRankZero();
        int startStep = Step, accumulation = options.GradientAccumulation;
        float lastLoss = float.NaN;
        long tokens = 0;
        string? lastCheckpoint = null;
        int checkpointedStep = -1;
        var stop = TrainStop.Completed;
        bool stopAgreed = false;   // with a group, a stop request anywhere ends every rank after the same step
        while (Step < options.Steps)
        {
            if (allReduce is null ? cancellation.IsCancellationRequested : stopAgreed)
            {
                stop = TrainStop.Interrupted;
                break;
            }
            int step = Step + 1;
            double weightedLoss = 0;
            long targets = 0;
            int stepTokens = 0;
            for (int micro = 0; micro < accumulation; micro++)
            {
                var batch = sampler.Next();
                // A shard's gradient is weighted by its targets whatever the accumulation: the group's sum is then the
                // global batch's summed-loss gradient, and 1/(all targets) below makes it the mean.
                bool weighted = accumulation > 1 || allReduce is not null;
                float loss = engine.ForwardBackward(batch, accumulate: micro > 0, gradientWeight: weighted ? batch.TargetCount : 1f);
                weightedLoss += (double)loss * batch.TargetCount;
                targets += batch.TargetCount;
                stepTokens += batch.Rows * batch.SequenceLength;
            }
            if (allReduce is not null)
            {
                // Checked after the sum, so a rank whose loss diverged stops the whole group with the same error.
                var totals = allReduce.Reduce(engine, new StepTotals(targets, weightedLoss, stepTokens, cancellation.IsCancellationRequested));
                (targets, weightedLoss, stepTokens, stopAgreed) = (totals.Targets, totals.WeightedLoss, (int)totals.Tokens, totals.StopRequested);
            }
            if (!double.IsFinite(weightedLoss)) throw NonFiniteLoss(weightedLoss / targets, step, updated: step > startStep + 1 || startStep > 0);
            float learningRate = options.Schedule.At(step, options.Steps, options.LearningRate);
            // Micro-batches (and shards) were weighted by their target counts, so 1/targets makes the mean over all of
            // them; × K undoes the engine's mean over the K prompts' targets (see remarks).
            float gradientScale = accumulation == 1 && allReduce is null ? options.Ensemble : (float)options.Ensemble / targets;
            engine.OptimizerStep(options.Optimizer, step, learningRate, gradientScale);
            Step = step;
            lastLoss = (float)(weightedLoss / targets);
            tokens += stepTokens;
            observer?.OnStep(new TrainProgress(step, options.Steps, lastLoss, engine, stepTokens, clock.Elapsed.TotalSeconds)
            {
                LearningRate = learningRate,
                StartStep = startStep,
            });

            // In a group every rank evaluates its share and computes the same metrics, so all make the same stop decision.
            if (Dev is not null && ((options.EvalEvery > 0 && step % options.EvalEvery == 0) || step == options.Steps) && Evaluate(observer))
                stop = TrainStop.EarlyStopped;
            bool last = step == options.Steps || stop == TrainStop.EarlyStopped;
            if (Checkpoints is not null && ((options.CheckpointEvery > 0 && step % options.CheckpointEvery == 0) || last))
            {
                lastCheckpoint = SaveCheckpoint(observer);
                checkpointedStep = step;
            }
            if (stop == TrainStop.EarlyStopped) break;
        }
        if (stop == TrainStop.Interrupted && Checkpoints is not null && checkpointedStep != Step && Step > startStep)
            lastCheckpoint = SaveCheckpoint(observer);
        return new TrainResult(Step, lastLoss, stop, Best, clock.Elapsed.TotalSeconds, tokens, lastCheckpoint);
    }

    /// <summary>
    /// Every rank continues from rank 0's state (its prompts, optimizer state, step and data position), so only rank 0
    /// has to load a checkpoint, and ranks whose initial prompts differ cannot drift apart.
    /// </summary>
    private void JoinRankZero()
    {
        joined = true;
        if (Dev is not null && Dev.Processes != group)
            throw new InvalidOperationException("DevEvaluator.Processes must be the training run's process group: every rank scores its share of the dev rows.");
        var position = sampler.Position;
        Span<double> header = [Step, position.Epoch, position.Cursor, Dev?.Rows ?? -1];
        group.Broadcast(header);
        if (header[3] != (Dev?.Rows ?? -1))
            throw new InvalidOperationException($"Rank {group.Rank} evaluates {(Dev is null ? "no" : Dev.Rows.ToString(System.Globalization.CultureInfo.InvariantCulture))} dev rows, rank 0 {(header[3] < 0 ? "none" : header[3].ToString(System.Globalization.CultureInfo.InvariantCulture))}: every rank needs the same dev data.");
        var prompts = CurrentPrompt();
        var state = new float[engine.OptimizerStateLength];
        engine.ReadOptimizerState(state);
        group.Broadcast(prompts);
        group.Broadcast(state);
        if (group.Rank == 0) return;
        engine.LoadPrompts(prompts, engine.RequirePrompts());
        engine.LoadOptimizerState(state);
        var rootPosition = new SamplerPosition((int)header[1], (int)header[2]);
        if (rootPosition != position) sampler.Seek(rootPosition);
        Step = (int)header[0];
    }

    /// <summary>Evaluates, keeps the prompt when it is the best so far, and says whether patience has run out.</summary>
    private bool Evaluate(ITrainingObserver? observer)
    {
        var metrics = Dev!.Evaluate(engine);
        bool improved = Best is null || metrics.IsBetterThan(Best.Metrics);
        if (improved)
        {
            // A fresh array per improvement (not a step's hot path): callers may hold on to the previous best.
            Best = new BestPrompt(Step, metrics, CurrentPrompt());
            EvaluationsSinceBest = 0;
        }
        else EvaluationsSinceBest++;
        observer?.OnEvaluation(Step, metrics, improved, Best!);
        return options.EarlyStoppingPatience > 0 && EvaluationsSinceBest >= options.EarlyStoppingPatience;
    }

    /// <summary>Which library sums the gradients of the group's processes.</summary>
    public CollectiveBackend Collective => allReduce?.Backend ?? CollectiveBackend.None;

    public void Dispose() => allReduce?.Dispose();

    /// <summary>The engine's current prompts [K, P, d] (K = 1 outside ensembles).</summary>
    public float[] CurrentPrompt()
    {
        var values = new float[engine.PromptCount * promptLength * engine.EmbeddingSize];
        engine.ReadPrompts(values);
        return values;
    }

    private string SaveCheckpoint(ITrainingObserver? observer)
    {
        var state = new float[engine.OptimizerStateLength];
        engine.ReadOptimizerState(state);
        var checkpoint = new TrainingCheckpoint(Step, promptLength, engine.EmbeddingSize, CurrentPrompt(), state, sampler.Position,
            Best, EvaluationsSinceBest, Signature, PromptMetadata) { PromptCount = engine.PromptCount };
        string path = Checkpoints!.Save(checkpoint);
        observer?.OnCheckpoint(Step, path);
        return path;
    }
}
