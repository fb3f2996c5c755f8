using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// What every device engine keeps for its prompts, on the device: the prompts [K, P, d], their gradient, the optimizer
/// state (AdamW's m and v; Adafactor's factored rows and columns at their starts) and the gradient-norm scratch, plus
/// the optimizer step as kernels (the norm and clip scale stay on the device: no host sync).
/// </summary>
internal sealed class DevicePromptState : IDisposable
{
    private readonly IComputeDevice device;
    private readonly int width;
    private readonly DeviceBuffer<float> normScratch;
    private DeviceBuffer<float>? prompts, gradient, firstState, secondState;

    public DevicePromptState(IComputeDevice device, int width)
    {
        this.device = device;
        this.width = width;
        normScratch = device.Allocate<float>(GradientNorm.ScratchLength);
    }

    public int PromptCount { get; private set; }
    public int PromptLength { get; private set; }
    private int Size => PromptCount * PromptLength * width;

    public DeviceSpan<float> Prompts => (prompts ?? throw NotLoaded()).Span;
    public DeviceSpan<float> Gradient => (gradient ?? throw NotLoaded()).Span;

    private static InvalidOperationException NotLoaded() => new("Load prompts first.");

    public void Load(ReadOnlySpan<float> values, int promptCount, int promptLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(promptCount);
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        int size = promptCount * promptLength * width;
        if (values.Length != size)
            throw new ArgumentException($"Prompts hold {values.Length} values; {promptCount} prompts × {promptLength} vectors × d={width} need {size}.");
        if (prompts is null || prompts.Length != Math.Max(1, size))
        {
            DisposeBuffers();
            prompts = device.Allocate<float>(Math.Max(1, size));
            gradient = device.Allocate<float>(Math.Max(1, size));
            firstState = device.Allocate<float>(Math.Max(1, size));
            secondState = device.Allocate<float>(Math.Max(1, size));
        }
        PromptCount = promptCount;
        PromptLength = promptLength;
        if (size > 0) prompts.CopyFrom(values);
        device.Zero(gradient!.Span);
        device.Zero(firstState!.Span);
        device.Zero(secondState!.Span);
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

    /// <summary>Reading it waits for the device.</summary>
    public float LastGradientNorm
    {
        get
        {
            Span<float> norm = stackalloc float[1];
            device.CopyToHost(normScratch.Slice(GradientNorm.NormOffset, 1), norm);
            return norm[0];
        }
    }

    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale)
    {
        if (prompts is null || PromptCount == 0) throw new InvalidOperationException("Load prompts before an optimizer step.");
        var p = prompts.Span;
        var g = gradient!.Span;
        GradientNorm.Launch(device, normScratch.Span, g, gradientScale, settings.ClipNorm);
        var scale = normScratch.Slice(GradientNorm.ScaleOffset, 1);
        switch (settings.Kind)
        {
            case OptimizerKind.Sgd:
                SgdStep.Launch(device, p, g, scale, learningRate, settings.WeightDecay);
                break;
            case OptimizerKind.AdamW:
                AdamWStep.Launch(device, p, g, firstState!.Span, secondState!.Span, scale, learningRate, settings.Beta1, settings.Beta2,
                    settings.Epsilon, settings.WeightDecay, step);
                break;
            case OptimizerKind.Adafactor:
                AdafactorStep.Launch(device, p, g, firstState!.Slice(0, PromptCount * PromptLength), secondState!.Slice(0, PromptCount * width),
                    scale, PromptCount, PromptLength, width, learningRate, settings.DecayRate, settings.ClipThreshold,
                    settings.AdafactorEpsilon, settings.WeightDecay, step);
                break;
            default:
                throw new NotSupportedException($"Optimizer {settings.Kind} is not supported on the device.");
        }
    }

    private void DisposeBuffers()
    {
        prompts?.Dispose();
        gradient?.Dispose();
        firstState?.Dispose();
        secondState?.Dispose();
    }

    public void Dispose()
    {
        DisposeBuffers();
        normScratch.Dispose();
    }
}
