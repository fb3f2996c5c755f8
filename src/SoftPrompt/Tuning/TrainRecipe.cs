using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>
/// A named set of defaults for `train --recipe`; any flag given explicitly overrides its value.
/// <para>
/// lester2021 — Lester, Al-Rfou &amp; Constant (2021), §3 and Appendix A: prompt length 100, class-label
/// initialisation (sampled vocabulary where the data has no verbalizer), Adafactor with a constant learning rate of
/// 0.3, batch 32, second-moment decay 1 − t^−0.8, update clipping at RMS 1.0, weight decay 1e-5, no parameter
/// scaling, 30,000 steps, and the prompt picked by early stopping on the dev set (evaluated every 1,000 steps here;
/// the best one is kept, training is not cut short unless --early-stopping-patience says so).
/// </para>
/// </summary>
public sealed record TrainRecipe(
    string Name,
    int PromptLength,
    InitSpec Init,
    OptimizerKind Optimizer,
    float LearningRate,
    ScheduleKind Schedule,
    int BatchSize,
    float DecayRate,
    float ClipThreshold,
    float WeightDecay,
    int Steps,
    int EvalEvery,
    bool NeedsDev)
{
    public static readonly TrainRecipe Lester2021 = new("lester2021", PromptLength: 100, InitSpec.ClassLabels, OptimizerKind.Adafactor,
        LearningRate: 0.3f, ScheduleKind.Constant, BatchSize: 32, DecayRate: -0.8f, ClipThreshold: 1f, WeightDecay: 1e-5f,
        Steps: 30000, EvalEvery: 1000, NeedsDev: true);

    public static readonly IReadOnlyList<TrainRecipe> All = [Lester2021];

    public static TrainRecipe Find(string name) => All.FirstOrDefault(r => r.Name == name)
        ?? throw new ArgumentException($"`TrainRecipe` \"{name}\" is not a recipe; available: {string.Join(", ", All.Select(r => r.Name))}.");
}
