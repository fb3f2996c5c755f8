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
    private Buffers? buffers;
    private float[] hostScratch = [];

    public DevicePromptState(IComputeDevice device, int width)
    {
        this.device = device;
        this.width = width;
    }

    /// <summary>The device memory of K prompts of a layout (width d): one arena.</summary>
    internal sealed class Buffers : IDisposable
    {
        public static Buffers Allocate(IComputeDevice device, int width, PromptLayout layout)
            => DeviceArena.Allocate(device, "prompt state", carve => new Buffers(carve, width, layout));

        public static Buffers Measure(int width, PromptLayout layout) => DeviceArena.Measure("prompt state", carve => new Buffers(carve, width, layout));

        private Buffers(ArenaCarver carve, int width, PromptLayout layout)
        {
            Arena = carve.Arena;
            carve.Kind = DeviceMemoryKind.PromptState;
            long size = Math.Max(1, layout.ValueCount(width));
            Prompts = carve.Take<float>("prompts", size);
            Gradient = carve.Take<float>("gradient", size);
            FirstState = carve.Take<float>("optimizer.first", size);
            SecondState = carve.Take<float>("optimizer.second", size);
            NormScratch = carve.Take<float>("norm_scratch", (long)layout.Count * GradientNorm.ScratchLength);
            Offsets = carve.Take<int>("offsets", layout.Count + 1);
            NonFinite = carve.Zeroed<int>("non_finite_count", 1);
            Width = width;
            Count = layout.Count;
            Size = layout.ValueCount(width);
        }

        public DeviceArena Arena { get; }
        public int Width { get; }
        public int Count { get; }
        public int Size { get; }
        public DeviceSpan<float> Prompts { get; }
        public DeviceSpan<float> Gradient { get; }
        public DeviceSpan<float> FirstState { get; }
        public DeviceSpan<float> SecondState { get; }
        public DeviceSpan<float> NormScratch { get; }
        public DeviceSpan<int> Offsets { get; }
        /// <summary>[1]: NaN/±Inf values the optimizer steps since the last check have written (prompts and optimizer state).</summary>
        public DeviceSpan<int> NonFinite { get; }

        public void Dispose() => Arena.Dispose();
    }

    public PromptLayout? Layout { get; private set; }
    public int PromptCount => Layout?.Count ?? 0;
    private int Size => Layout?.ValueCount(width) ?? 0;
    private Buffers Loaded => buffers ?? throw NotLoaded();

    public DeviceSpan<float> Prompts => Loaded.Prompts;
    public DeviceSpan<float> Gradient => Loaded.Gradient;
    /// <summary>The loaded prompts' part of <see cref="Gradient"/>: [ΣP_k, width], as ReadGradient reads it.</summary>
    public DeviceSpan<float> PromptGradient => Loaded.Gradient.Slice(0, Size);
    /// <summary>[K + 1] int: prompt k's first row of <see cref="Prompts"/>, then ΣP_k (the embedding kernels' prompt_offsets).</summary>
    public DeviceSpan<int> Offsets => Loaded.Offsets;

    private static InvalidOperationException NotLoaded() => new("Load prompts first.");

    public void Load(ReadOnlySpan<float> values, PromptLayout layout)
    {
        int size = layout.ValueCount(width);
        if (values.Length != size)
            throw new ArgumentException($"Prompts hold {values.Length} values; prompts {layout} × d={width} need {size}.");
        if (buffers is null || buffers.Size != size || buffers.Count != layout.Count)
        {
            buffers?.Dispose();
            buffers = null;
            buffers = Buffers.Allocate(device, width, layout);
            hostScratch = new float[layout.Count * GradientNorm.ScratchLength];
        }
        var b = buffers;
        Layout = layout;
        device.CopyToDevice<int>(layout.Offsets, b.Offsets);
        if (size > 0) device.CopyToDevice(values, b.Prompts.Slice(0, size));
        device.Zero(b.Gradient);
        device.Zero(b.FirstState);
        device.Zero(b.SecondState);
        device.Zero(b.NormScratch);
        device.Zero(b.NonFinite);
        stepsSinceCheck = 0;
    }

    public void ReadPrompts(Span<float> destination) => Read(Loaded.Prompts, destination);
    public void ReadGradient(Span<float> destination) => Read(Loaded.Gradient, destination);

    public void WriteGradient(ReadOnlySpan<float> source)
    {
        if (source.Length != Size) throw new ArgumentException($"Gradient holds {source.Length} values, the prompts {Size}.");
        if (Size > 0) device.CopyToDevice(source, Loaded.Gradient.Slice(0, Size));
    }

    private void Read(DeviceSpan<float> source, Span<float> destination)
    {
        if (destination.Length != Size) throw new ArgumentException($"Destination holds {destination.Length} values, expected {Size}.");
        if (Size > 0) device.CopyToHost(source.Slice(0, Size), destination);
    }

    public int OptimizerStateLength => 2 * Size;

    public void ReadOptimizerState(Span<float> destination)
    {
        if (destination.Length != OptimizerStateLength) throw new ArgumentException($"Optimizer state holds {OptimizerStateLength} values, the destination {destination.Length}.");
        if (Size == 0) return;
        device.CopyToHost(Loaded.FirstState.Slice(0, Size), destination[..Size]);
        device.CopyToHost(Loaded.SecondState.Slice(0, Size), destination[Size..]);
    }

    public void LoadOptimizerState(ReadOnlySpan<float> source)
    {
        if (source.Length != OptimizerStateLength) throw new ArgumentException($"Optimizer state needs {OptimizerStateLength} values for these prompts, got {source.Length}; was it saved for another prompt shape?");
        if (Size == 0) return;
        device.CopyToDevice(source[..Size], Loaded.FirstState.Slice(0, Size));
        device.CopyToDevice(source[Size..], Loaded.SecondState.Slice(0, Size));
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

    private void ReadScratch() => device.CopyToHost(Loaded.NormScratch, hostScratch);

    /// <summary>
    /// One update of every prompt, queued without waiting: per prompt, its gradient norm and clip scale (into its own
    /// scratch), then the step kernel on its rows with that scale. K small launches per step; K is the number of tasks or
    /// ensemble members, so this stays a sliver of the step.
    /// </summary>
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale)
    {
        var layout = Layout ?? throw new InvalidOperationException("Load prompts before an optimizer step.");
        var b = Loaded;
        for (int k = 0; k < layout.Count; k++)
        {
            int rows = layout.Length(k);
            if (rows == 0) continue;
            long start = (long)layout.Offset(k) * width, size = (long)rows * width;
            var p = b.Prompts.Slice(start, size);
            var g = b.Gradient.Slice(start, size);
            var scratch = b.NormScratch.Slice((long)k * GradientNorm.ScratchLength, GradientNorm.ScratchLength);
            GradientNorm.Launch(device, scratch, g, gradientScale, settings.ClipNorm);
            var scale = scratch.Slice(GradientNorm.ScaleOffset, 1);
            switch (settings.Kind)
            {
                case OptimizerKind.Sgd:
                    SgdStep.Launch(device, p, g, scale, learningRate, settings.WeightDecay);
                    break;
                case OptimizerKind.AdamW:
                    AdamWStep.Launch(device, p, g, b.FirstState.Slice(start, size), b.SecondState.Slice(start, size), scale, learningRate, settings.Beta1,
                        settings.Beta2, settings.Epsilon, settings.WeightDecay, step);
                    break;
                case OptimizerKind.Adafactor:
                    AdafactorStep.Launch(device, p, g, b.FirstState.Slice(layout.Offset(k), rows), b.SecondState.Slice((long)k * width, width),
                        scale, 1, rows, width, learningRate, settings.DecayRate, settings.ClipThreshold, settings.AdafactorEpsilon, settings.WeightDecay, step);
                    break;
                default:
                    throw new NotSupportedException($"Optimizer {settings.Kind} is not supported on the device.");
            }
        }
        // Counted on the device, read with the next loss (ThrowIfDiverged): divergence is caught at the step after, without a sync per step.
        CountNonFinite.Launch(device, b.NonFinite, b.Prompts.Slice(0, Size));
        CountNonFinite.Launch(device, b.NonFinite, b.FirstState.Slice(0, Size));
        CountNonFinite.Launch(device, b.NonFinite, b.SecondState.Slice(0, Size));
        if (stepsSinceCheck == 0) firstUncheckedStep = step;
        stepsSinceCheck++;
    }

    private readonly int[] nonFiniteReadback = new int[1];
    private int stepsSinceCheck, firstUncheckedStep;

    /// <summary>
    /// Throws when an optimizer step since the last check wrote NaN or infinity into the prompts or the optimizer state.
    /// Call after the device was waited for anyway (reading the loss): the read is then 4 bytes, not a sync.
    /// </summary>
    public void ThrowIfDiverged()
    {
        if (stepsSinceCheck == 0 || buffers is null) return;
        device.CopyToHost(buffers.NonFinite, nonFiniteReadback);
        int steps = stepsSinceCheck;
        stepsSinceCheck = 0;
        if (nonFiniteReadback[0] == 0) return;
        throw new InvalidOperationException($"The optimizer step{(steps > 1 ? $"s {firstUncheckedStep}–{firstUncheckedStep + steps - 1}" : $" {firstUncheckedStep}")} wrote " +
            $"{nonFiniteReadback[0]} NaN or infinite values into the prompts or the optimizer state: the prompt diverged; lower `TrainOptions.LearningRate` or set `OptimizerSettings.ClipNorm`.");
    }

    public void Dispose() => buffers?.Dispose();
}
