using System.Numerics;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// The trainable side of a CPU engine, whatever the model: the prompts packed as [ΣP_k, d] (<see cref="Layout"/>),
/// dLoss/dPrompts, the optimizer state and the optimizer step. The engine's reverse pass writes <see cref="Gradient"/>.
/// Every prompt is optimized as if it trained alone: its own gradient norm, clip factor and Adafactor statistics.
/// </summary>
internal sealed class CpuPromptState<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    /// <summary>AdamW: m and v [ΣP·d]. Adafactor: row state [ΣP] and column state [K·d] in the first elements.</summary>
    private T[] firstMoment = [];
    private T[] secondMoment = [];
    private float[] gradientNorms = [];

    public CpuPromptState(int width) => Width = width;

    public int Width { get; }
    public PromptLayout? Layout { get; private set; }
    public int PromptCount => Layout?.Count ?? 0;
    public T[] Prompts { get; private set; } = [];
    public T[] Gradient { get; private set; } = [];

    public void Load(ReadOnlySpan<T> values, PromptLayout layout)
    {
        int size = layout.ValueCount(Width);
        if (values.Length != size)
            throw new ArgumentException($"Prompts hold {values.Length} values; prompts {layout} × d={Width} need {size}.");
        Layout = layout;
        Prompts = values.ToArray();
        Gradient = new T[size];
        firstMoment = new T[size];
        secondMoment = new T[size];
        gradientNorms = new float[layout.Count];
    }

    public void Load(ReadOnlySpan<float> values, PromptLayout layout)
    {
        var converted = new T[values.Length];
        for (int i = 0; i < values.Length; i++) converted[i] = T.CreateChecked(values[i]);
        Load(converted, layout);
    }

    public void ReadPrompts(Span<float> destination) => Convert(Prompts, destination);
    public void ReadGradient(Span<float> destination) => Convert(Gradient, destination);

    public void WriteGradient(ReadOnlySpan<float> source)
    {
        if (source.Length != Gradient.Length) throw new ArgumentException($"Gradient holds {source.Length} values, the prompts {Gradient.Length}.");
        for (int i = 0; i < source.Length; i++) Gradient[i] = T.CreateChecked(source[i]);
    }

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

    /// <summary>Global L2 norm of the last step's scaled, unclipped gradient over all prompts.</summary>
    public float LastGradientNorm
    {
        get
        {
            double sum = 0;
            foreach (float norm in gradientNorms) sum += (double)norm * norm;
            return (float)Math.Sqrt(sum);
        }
    }

    /// <summary>Each prompt's L2 norm of the last step's scaled, unclipped gradient: [K].</summary>
    public void ReadGradientNorms(Span<float> destination)
    {
        if (destination.Length != gradientNorms.Length) throw new ArgumentException($"Destination holds {destination.Length} values, expected {gradientNorms.Length} (one per prompt).");
        gradientNorms.CopyTo(destination);
    }

    /// <summary>One update of every prompt; clipping to <see cref="OptimizerSettings.ClipNorm"/> applies to each prompt's own gradient norm.</summary>
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale)
    {
        var layout = Layout ?? throw new InvalidOperationException("Load prompts before an optimizer step.");
        T lr = T.CreateChecked(learningRate), wd = T.CreateChecked(settings.WeightDecay);
        for (int k = 0; k < layout.Count; k++)
        {
            int rows = layout.Length(k), start = layout.Offset(k) * Width, size = rows * Width;
            var prompt = Prompts.AsSpan(start, size);
            var gradient = Gradient.AsSpan(start, size);
            T scale = T.CreateChecked(gradientScale);
            T norm = OptimizerOps.GlobalNorm<T>(gradient) * T.Abs(scale);
            if (settings.ClipNorm > 0 && norm > T.CreateChecked(settings.ClipNorm))
                scale *= T.CreateChecked(settings.ClipNorm) / norm;
            gradientNorms[k] = float.CreateTruncating(norm);
            if (size == 0) continue;
            switch (settings.Kind)
            {
                case OptimizerKind.Sgd:
                    OptimizerOps.SgdStep<T>(prompt, gradient, lr, wd, scale);
                    break;
                case OptimizerKind.AdamW:
                    OptimizerOps.AdamWStep<T>(prompt, gradient, firstMoment.AsSpan(start, size), secondMoment.AsSpan(start, size), lr,
                        T.CreateChecked(settings.Beta1), T.CreateChecked(settings.Beta2), T.CreateChecked(settings.Epsilon), wd, step, scale);
                    break;
                case OptimizerKind.Adafactor:
                    AdafactorOps.Step<T>(prompt, gradient, firstMoment.AsSpan(layout.Offset(k), rows), secondMoment.AsSpan(k * Width, Width), rows, Width, lr,
                        T.CreateChecked(settings.DecayRate), T.CreateChecked(settings.ClipThreshold), T.CreateChecked(settings.AdafactorEpsilon), wd, step, scale);
                    break;
                default:
                    throw new NotSupportedException($"Optimizer {settings.Kind} is not supported by the CPU engine.");
            }
        }
        int nonFinite = CountNonFinite(Prompts) + CountNonFinite(firstMoment) + CountNonFinite(secondMoment);
        if (nonFinite > 0)
            throw new InvalidOperationException($"The optimizer step {step} wrote {nonFinite} NaN or infinite values into the prompts or the optimizer state: " +
                "the prompt diverged; lower `TrainOptions.LearningRate` or set `OptimizerSettings.ClipNorm`.");
    }

    private static int CountNonFinite(ReadOnlySpan<T> values)
    {
        int count = 0;
        foreach (var v in values) count += T.IsFinite(v) ? 0 : 1;
        return count;
    }

    internal static void Convert(ReadOnlySpan<T> source, Span<float> destination)
    {
        if (destination.Length != source.Length) throw new ArgumentException($"Destination holds {destination.Length} values, expected {source.Length}.");
        for (int i = 0; i < source.Length; i++) destination[i] = float.CreateTruncating(source[i]);
    }
}
