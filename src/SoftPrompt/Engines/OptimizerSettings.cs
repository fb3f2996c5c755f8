namespace SoftPrompt.Engines;

public enum OptimizerKind { Sgd, AdamW, Adafactor }

/// <summary>
/// Optimizer hyper-parameters; the learning rate comes per step (schedules live in the trainer).
/// Adafactor follows Hugging Face's implementation with relative_step = scale_parameter = False and no
/// first moment, which is the paper's setup: factored second moments decayed by 1 − t^DecayRate and
/// update clipping at ClipThreshold (RMS).
/// </summary>
public sealed record OptimizerSettings(
    OptimizerKind Kind,
    float Beta1 = 0.9f,
    float Beta2 = 0.999f,
    float Epsilon = 1e-8f,
    float WeightDecay = 0f,
    /// <summary>Global L2 gradient-norm clip; 0 = off.</summary>
    float ClipNorm = 0f,
    float DecayRate = -0.8f,
    float ClipThreshold = 1f,
    float AdafactorEpsilon = 1e-30f)
{
    /// <summary>
    /// Throws unless every hyper-parameter is a finite number in its range: a NaN or out-of-range value would otherwise
    /// run, and write a prompt of NaN or Inf. <paramref name="peakLearningRate"/> bounds the weight decay: a step
    /// multiplies the prompt by 1 − lr·decay, which must not pass zero.
    /// </summary>
    public void Validate(float peakLearningRate)
    {
        if (!(ClipNorm >= 0) || !float.IsFinite(ClipNorm)) throw new ArgumentException($"`OptimizerSettings.ClipNorm` must be a finite number ≥ 0 (0 = off), got {ClipNorm}.");
        if (!(WeightDecay >= 0) || !float.IsFinite(WeightDecay)) throw new ArgumentException($"`OptimizerSettings.WeightDecay` must be a finite number ≥ 0, got {WeightDecay}.");
        if ((double)peakLearningRate * WeightDecay > 1)
            throw new ArgumentException($"`OptimizerSettings.WeightDecay` {WeightDecay} at the peak learning rate {peakLearningRate} shrinks the prompt past zero each step (their product must be at most 1).");
        if (!(DecayRate < 0) || !float.IsFinite(DecayRate)) throw new ArgumentException($"`OptimizerSettings.DecayRate` must be negative (the second-moment decay is 1 − t^rate), got {DecayRate}.");
        if (!(ClipThreshold > 0) || !float.IsFinite(ClipThreshold)) throw new ArgumentException($"`OptimizerSettings.ClipThreshold` must be a positive number, got {ClipThreshold}.");
        // No flag sets these; a library user reads the setting's name.
        if (!(Beta1 >= 0 && Beta1 < 1) || !(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentException($"OptimizerSettings.Beta1 and Beta2 must lie in [0, 1), got {Beta1} and {Beta2}.");
        if (!(Epsilon > 0) || !float.IsFinite(Epsilon) || !(AdafactorEpsilon > 0) || !float.IsFinite(AdafactorEpsilon))
            throw new ArgumentException($"OptimizerSettings.Epsilon and AdafactorEpsilon must be positive, got {Epsilon} and {AdafactorEpsilon}.");
    }
}
