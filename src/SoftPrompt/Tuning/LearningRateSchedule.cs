namespace SoftPrompt.Tuning;

public enum ScheduleKind { Constant, Linear }

/// <summary>
/// The learning rate of each optimizer step, as transformers' get_constant_schedule_with_warmup and
/// get_linear_schedule_with_warmup compute it, so runs compare one-to-one with Hugging Face training scripts.
/// With i = step − 1 (the scheduler's count of steps already taken) and W warmup steps over T steps:
/// warmup i / W while i &lt; W (so the very first step runs at lr 0 when there is warmup, as there);
/// then constant 1, or linear (T − i) / (T − W) down towards 0.
/// </summary>
public sealed record LearningRateSchedule(ScheduleKind Kind, int WarmupSteps = 0)
{
    public static readonly LearningRateSchedule Constant = new(ScheduleKind.Constant);

    public static LearningRateSchedule Parse(string kind, int warmupSteps)
    {
        if (warmupSteps < 0) throw new ArgumentException($"`LearningRateSchedule.WarmupSteps` must be 0 or more, got {warmupSteps}.");
        return kind switch
        {
            "constant" => new LearningRateSchedule(ScheduleKind.Constant, warmupSteps),
            "linear" => new LearningRateSchedule(ScheduleKind.Linear, warmupSteps),
            _ => throw new ArgumentException($"`LearningRateSchedule.Kind` \"{kind}\" is not a schedule: use constant or linear."),
        };
    }

    /// <summary>The learning rate of 1-based optimizer step <paramref name="step"/> of <paramref name="totalSteps"/>, for peak <paramref name="peak"/>.</summary>
    public float At(int step, int totalSteps, float peak)
    {
        int i = step - 1;
        if (i < WarmupSteps) return (float)(peak * ((double)i / Math.Max(1, WarmupSteps)));
        if (Kind == ScheduleKind.Constant) return peak;
        return (float)(peak * Math.Max(0.0, (double)(totalSteps - i) / Math.Max(1, totalSteps - WarmupSteps)));
    }

    public override string ToString() => (Kind == ScheduleKind.Constant ? "constant" : "linear") + (WarmupSteps > 0 ? $" (warmup {WarmupSteps})" : "");
}
