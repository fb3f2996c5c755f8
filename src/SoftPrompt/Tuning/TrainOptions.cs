using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>One training run's settings.</summary>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="BatchSize">Rows per micro-batch; a step sees BatchSize × <see cref="GradientAccumulation"/> rows.</param>
/// <param name="LearningRate">Peak learning rate (the schedule scales it per step).</param>
public sealed record TrainOptions(
    int Steps,
    int BatchSize,
    float LearningRate,
    OptimizerSettings Optimizer,
    int Seed = 0,
    bool Shuffle = true)
{
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;
    /// <summary>Micro-batches whose gradients make one optimizer step (see <see cref="TrainingRun"/> for the weighting).</summary>
    public int GradientAccumulation { get; init; } = 1;
    /// <summary>Order each epoch so rows of similar length share batches (<see cref="Text.LengthBuckets"/>), instead of a plain shuffle.</summary>
    public bool LengthBuckets { get; init; }
    /// <summary>Evaluate on the dev set every this many steps and at the last step; 0 = only at the last step.</summary>
    public int EvalEvery { get; init; }
    /// <summary>Stop after this many evaluations in a row without a better dev score; 0 = never stop early.</summary>
    public int EarlyStoppingPatience { get; init; }
    /// <summary>Write a checkpoint every this many steps (and at the end); 0 = only at the end and on interruption.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>
    /// Prompts trained together (an ensemble, <see cref="TrainingRun"/>): every example of a batch runs once per prompt in
    /// the same forward and reverse pass. 1 = an ordinary single-prompt run.
    /// </summary>
    public int Ensemble { get; init; } = 1;

    public void Validate()
    {
        if (Steps <= 0) throw new ArgumentException($"`TrainOptions.Steps` must be positive, got {Steps}.");
        if (BatchSize <= 0) throw new ArgumentException($"`TrainOptions.BatchSize` must be positive, got {BatchSize}.");
        if (GradientAccumulation <= 0) throw new ArgumentException($"`TrainOptions.GradientAccumulation` must be positive, got {GradientAccumulation}.");
        if (!float.IsFinite(LearningRate) || LearningRate < 0) throw new ArgumentException($"`TrainOptions.LearningRate` must be a non-negative number, got {LearningRate}.");
        if (EvalEvery < 0 || EarlyStoppingPatience < 0 || CheckpointEvery < 0)
            throw new ArgumentException("`TrainOptions.EvalEvery`, `TrainOptions.EarlyStoppingPatience` and `TrainOptions.CheckpointEvery` must be 0 or more.");
        Optimizer.Validate(LearningRate);
        if (Ensemble <= 0) throw new ArgumentException($"`TrainOptions.Ensemble` must be positive, got {Ensemble}.");
    }
}

/// <summary>What the trainer reports after each optimizer step.</summary>
/// <param name="Loss">Mean cross-entropy over every target token of the step's micro-batches (the loss of the whole effective batch; an ensemble's mean over its prompts).</param>
/// <param name="Tokens">Positions (prompt + tokens, padding included) the engine computed in this step; an ensemble run counts every prompt's rows.</param>
/// <param name="Seconds">Since this process started training (a resumed run counts from its resume).</param>
public readonly record struct TrainProgress(int Step, int Steps, float Loss, IPromptEngine Engine, int Tokens, double Seconds)
{
    /// <summary>The learning rate this step used.</summary>
    public float LearningRate { get; init; }
    /// <summary>The step this process started from (0, or the checkpoint's step when resumed).</summary>
    public int StartStep { get; init; }

    /// <summary>Waits for the device: read it only on steps that are logged.</summary>
    public float GradientNorm => Engine.LastGradientNorm;
}

/// <summary>The best prompt of a run so far: the step it was evaluated at, its dev metrics and its values [P, d] (an ensemble's [K, P, d]).</summary>
public sealed record BestPrompt(int Step, DevMetrics Metrics, float[] Values);

public enum TrainStop { Completed, EarlyStopped, Interrupted }

/// <summary>How a run ended.</summary>
/// <param name="Step">Optimizer steps done (including those before a resume).</param>
/// <param name="LastLoss">The last step's training loss (NaN when this process ran no step).</param>
public sealed record TrainResult(int Step, float LastLoss, TrainStop Stop, BestPrompt? Best, double Seconds, long Tokens, string? LastCheckpoint);

/// <summary>Hears about a run as it goes; every method is optional.</summary>
public interface ITrainingObserver
{
    void OnStep(in TrainProgress progress) { }
    void OnEvaluation(int step, DevMetrics metrics, bool improved, BestPrompt best) { }
    void OnCheckpoint(int step, string path) { }
}
