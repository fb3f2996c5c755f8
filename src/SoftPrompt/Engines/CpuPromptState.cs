using System.Numerics;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// The trainable side of a CPU engine, whatever the model: the prompts [PromptCount, P, d], dLoss/dPrompts, the
/// optimizer state and the optimizer step. The engine's reverse pass writes <see cref="Gradient"/>.
/// </summary>
internal sealed class CpuPromptState<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>AdamW: m and v [PromptCount·P·d]. Adafactor: row state [PromptCount·P] and column state [PromptCount·d] in the first elements.</summary>
    private T[] firstMoment = [];
    private T[] secondMoment = [];

    public CpuPromptState(int width) => Width = width;

    public int Width { get; }
    public int PromptCount { get; private set; }
    public int PromptLength { get; private set; }
    public T[] Prompts { get; private set; } = [];
    public T[] Gradient { get; private set; } = [];
    public float LastGradientNorm { get; private set; }

    public void Load(ReadOnlySpan<T> values, int promptCount, int promptLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(promptCount);
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        int size = promptCount * promptLength * Width;
        if (values.Length != size)
            throw new ArgumentException($"Prompts hold {values.Length} values; {promptCount} prompts × {promptLength} vectors × d={Width} need {size}.");
        PromptCount = promptCount;
        PromptLength = promptLength;
        Prompts = values.ToArray();
        Gradient = new T[size];
        firstMoment = new T[size];
        secondMoment = new T[size];
    }

    public void Load(ReadOnlySpan<float> values, int promptCount, int promptLength)
    {
        var converted = new T[values.Length];
        for (int i = 0; i < values.Length; i++) converted[i] = T.CreateChecked(values[i]);
        Load(converted, promptCount, promptLength);
    }

    public void ReadPrompts(Span<float> destination) => Convert(Prompts, destination);
    public void ReadGradient(Span<float> destination) => Convert(Gradient, destination);

    public int OptimizerStateLength => 2 * Prompts.Length;

    public void ReadOptimizerState(Span<float> destination)
    {
        if (destination.Length != OptimizerStateLength) throw new ArgumentException($"Optimizer state holds {OptimizerStateLength} values, the destination {destination.Length}.");
        Convert(firstMoment, destination[..Prompts.Length]);
        Convert(secondMoment, destination[Prompts.Length..]);
    }

    public void LoadOptimizerState(ReadOnlySpan<float> source)
    {
        if (source.Length != OptimizerStateLength) throw new ArgumentException($"Optimizer state needs {OptimizerStateLength} values for these prompts, got {source.Length}; was it saved for another prompt shape?");
        for (int i = 0; i < Prompts.Length; i++)
        {
            firstMoment[i] = T.CreateChecked(source[i]);
            secondMoment[i] = T.CreateChecked(source[Prompts.Length + i]);
        }
    }

    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale)
    {
        if (PromptCount == 0) throw new InvalidOperationException("Load prompts before an optimizer step.");
        T scale = T.CreateChecked(gradientScale);
        T norm = OptimizerOps.GlobalNorm<T>(Gradient) * T.Abs(scale);
        if (settings.ClipNorm > 0 && norm > T.CreateChecked(settings.ClipNorm))
            scale *= T.CreateChecked(settings.ClipNorm) / norm;
        T lr = T.CreateChecked(learningRate), wd = T.CreateChecked(settings.WeightDecay);
        switch (settings.Kind)
        {
            case OptimizerKind.Sgd:
                OptimizerOps.SgdStep<T>(Prompts, Gradient, lr, wd, scale);
                break;
            case OptimizerKind.AdamW:
                OptimizerOps.AdamWStep<T>(Prompts, Gradient, firstMoment, secondMoment, lr, T.CreateChecked(settings.Beta1),
                    T.CreateChecked(settings.Beta2), T.CreateChecked(settings.Epsilon), wd, step, scale);
                break;
            case OptimizerKind.Adafactor:
                for (int p = 0; p < PromptCount; p++)
                {
                    int offset = p * PromptLength * Width;
                    AdafactorOps.Step<T>(Prompts.AsSpan(offset, PromptLength * Width), Gradient.AsSpan(offset, PromptLength * Width),
                        firstMoment.AsSpan(p * PromptLength, PromptLength), secondMoment.AsSpan(p * Width, Width), PromptLength, Width, lr,
                        T.CreateChecked(settings.DecayRate), T.CreateChecked(settings.ClipThreshold), T.CreateChecked(settings.AdafactorEpsilon), wd, step, scale);
                }
                break;
            default:
                throw new NotSupportedException($"Optimizer {settings.Kind} is not supported by the CPU engine.");
        }
        LastGradientNorm = float.CreateTruncating(norm);
    }

    internal static void Convert(ReadOnlySpan<T> source, Span<float> destination)
    {
        if (destination.Length != source.Length) throw new ArgumentException($"Destination holds {destination.Length} values, expected {source.Length}.");
        for (int i = 0; i < source.Length; i++) destination[i] = float.CreateTruncating(source[i]);
    }
}
