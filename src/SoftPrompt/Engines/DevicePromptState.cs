using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// What every device engine keeps for its prompts, on the device: the prompts packed as [ΣP_k, d] (<see cref="Layout"/>)
/// and their offsets [K + 1], their gradient, the optimizer state (AdamW's m and v; Adafactor's factored rows [ΣP] and
/// columns [K·d] at their starts) and one gradient-norm scratch per prompt, plus the optimizer step as kernels (norms and
/// clip scales stay on the device: no host sync). Every prompt is optimized as if it trained alone: its own gradient
/// norm, clip factor and Adafactor statistics (CpuPromptState's semantics).
/// </summary>
internal sealed class DevicePromptState : IDisposable
{
    private readonly IComputeDevice device;
    private readonly int width;
    private DeviceBuffer<float>? prompts, gradient, firstState, secondState, normScratch;
    private DeviceBuffer<int>? offsets;
    private float[] hostScratch = [];

    public DevicePromptState(IComputeDevice device, int width)
    {
        this.device = device;
        this.width = width;
    }

    public PromptLayout? Layout { get; private set; }
    public int PromptCount => Layout?.Count ?? 0;
    private int Size => Layout?.ValueCount(width) ?? 0;

    public DeviceSpan<float> Prompts => (prompts ?? throw NotLoaded()).Span;
    public DeviceSpan<float> Gradient => (gradient ?? throw NotLoaded()).Span;
    /// <summary>[K + 1] int: prompt k's first row of <see cref="Prompts"/>, then ΣP_k (the embedding kernels' prompt_offsets).</summary>
    public DeviceSpan<int> Offsets => (offsets ?? throw NotLoaded()).Span;

    private static InvalidOperationException NotLoaded() => new("Load prompts first.");

    public void Load(ReadOnlySpan<float> values, PromptLayout layout)
    {
        int size = layout.ValueCount(width);
        if (values.Length != size)
            throw new ArgumentException($"Prompts hold {values.Length} values; prompts {layout} × d={width} need {size}.");
        if (prompts is null || prompts.Length != Math.Max(1, size))
        {
            DisposeBuffers(prompts, gradient, firstState, secondState);
            prompts = device.Allocate<float>(Math.Max(1, size));
            gradient = device.Allocate<float>(Math.Max(1, size));
            firstState = device.Allocate<float>(Math.Max(1, size));
            secondState = device.Allocate<float>(Math.Max(1, size));
        }
        if (offsets is null || offsets.Length != layout.Count + 1)
        {
            DisposeBuffers(normScratch);
            offsets?.Dispose();
            offsets = device.Allocate<int>(layout.Count + 1);
            normScratch = device.Allocate<float>((long)layout.Count * GradientNorm.ScratchLength);
            hostScratch = new float[layout.Count * GradientNorm.ScratchLength];
        }
        Layout = layout;
        offsets.CopyFrom(layout.Offsets);
        if (size > 0) prompts.CopyFrom(values);
        device.Zero(gradient!.Span);
        device.Zero(firstState!.Span);
        device.Zero(secondState!.Span);
        device.Zero(normScratch!.Span);
    }

    public void ReadPrompts(Span<float> destination) => Read(prompts, destination);
    public void ReadGradient(Span<float> destination) => Read(gradient, destination);

    private void Read(DeviceBuffer<float>? buffer, Span<float> destination)
    {
        if (buffer is null) throw NotLoaded();
        if (destination.Length != Size) throw new ArgumentException($"Destination holds {destination.Length} values, expected {Size}.");
        if (Size > 0) buffer.CopyTo(destination);
    }

    public int OptimizerStateLength => 2 * Size;

    public void ReadOptimizerState(Span<float> destination)
    {
        if (destination.Length != OptimizerStateLength) throw new ArgumentException($"Optimizer state holds {OptimizerStateLength} values, the destination {destination.Length}.");
        if (Size == 0) return;
        firstState!.CopyTo(destination[..Size]);
        secondState!.CopyTo(destination[Size..]);
    }

    public void LoadOptimizerState(ReadOnlySpan<float> source)
    {
        if (source.Length != OptimizerStateLength) throw new ArgumentException($"Optimizer state needs {OptimizerStateLength} values for these prompts, got {source.Length}; was it saved for another prompt shape?");
        if (Size == 0) return;
        firstState!.CopyFrom(source[..Size]);
        secondState!.CopyFrom(source[Size..]);
    }

    /// <summary>Global L2 norm of the last step's scaled, unclipped gradient over all prompts; reading it waits for the device.</summary>
    public float LastGradientNorm
    {
        get
        {
            if (Layout is null) return 0f;
            ReadScratch();
            double sum = 0;
            for (int k = 0; k < Layout.Count; k++)
            {
                double norm = hostScratch[k * GradientNorm.ScratchLength + GradientNorm.NormOffset];
                sum += norm * norm;
            }
            return (float)Math.Sqrt(sum);
        }
    }

    /// <summary>Each prompt's L2 norm of the last step's scaled, unclipped gradient: [K]. Waits for the device.</summary>
    public void ReadGradientNorms(Span<float> destination)
    {
        if (destination.Length != PromptCount) throw new ArgumentException($"Destination holds {destination.Length} values, expected {PromptCount} (one per prompt).");
        ReadScratch();
        for (int k = 0; k < destination.Length; k++) destination[k] = hostScratch[k * GradientNorm.ScratchLength + GradientNorm.NormOffset];
    }

    private void ReadScratch() => normScratch!.CopyTo(hostScratch);

    /// <summary>
    /// One update of every prompt, queued without waiting: per prompt, its gradient norm and clip scale (into its own
    /// scratch), then the step kernel on its rows with that scale. K small launches per step; K is the number of tasks or
    /// ensemble members, so this stays a sliver of the step.
    /// </summary>
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale)
    {
        var layout = Layout ?? throw new InvalidOperationException("Load prompts before an optimizer step.");
        for (int k = 0; k < layout.Count; k++)
        {
            int rows = layout.Length(k);
            if (rows == 0) continue;
            long start = (long)layout.Offset(k) * width, size = (long)rows * width;
            var p = prompts!.Slice(start, size);
            var g = gradient!.Slice(start, size);
            var scratch = normScratch!.Slice((long)k * GradientNorm.ScratchLength, GradientNorm.ScratchLength);
            GradientNorm.Launch(device, scratch, g, gradientScale, settings.ClipNorm);
            var scale = scratch.Slice(GradientNorm.ScaleOffset, 1);
            switch (settings.Kind)
            {
                case OptimizerKind.Sgd:
                    SgdStep.Launch(device, p, g, scale, learningRate, settings.WeightDecay);
                    break;
                case OptimizerKind.AdamW:
                    AdamWStep.Launch(device, p, g, firstState!.Slice(start, size), secondState!.Slice(start, size), scale, learningRate, settings.Beta1,
                        settings.Beta2, settings.Epsilon, settings.WeightDecay, step);
                    break;
                case OptimizerKind.Adafactor:
                    AdafactorStep.Launch(device, p, g, firstState!.Slice(layout.Offset(k), rows), secondState!.Slice((long)k * width, width),
                        scale, 1, rows, width, learningRate, settings.DecayRate, settings.ClipThreshold, settings.AdafactorEpsilon, settings.WeightDecay, step);
                    break;
                default:
                    throw new NotSupportedException($"Optimizer {settings.Kind} is not supported on the device.");
            }
        }
    }

    private static void DisposeBuffers(params DeviceBuffer<float>?[] buffers)
    {
        foreach (var buffer in buffers) buffer?.Dispose();
    }

    public void Dispose()
    {
        DisposeBuffers(prompts, gradient, firstState, secondState, normScratch);
        offsets?.Dispose();
    }
}
