namespace SoftPrompt.Cuda.Kernels;

// Launchers of kernels/optimizer.cu (mirrors of Cpu/OptimizerOps and AdafactorOps). The gradient scale of a step
// (loss scale × clip factor) stays on the device: GradientNorm writes it into its scratch buffer at ScaleOffset, and
// the step kernels read it from there, so clipping never waits for the host.

/// <summary>
/// Global gradient norm and clip scale, in two deterministic launches (partials, then one block):
/// scratch[NormOffset] = |gradientScale|·‖g‖₂; scratch[ScaleOffset] = gradientScale·(clipNorm &gt; 0 &amp;&amp; norm &gt; clipNorm ? clipNorm / norm : 1)
/// (the CPU engine's OptimizerStep). scratch [≥ ScratchLength]; gradient [n = gradient.Length].
/// </summary>
internal static class GradientNorm
{
    public const string PartialsName = "gradient_norm_partials";
    public const string FinishName = "gradient_norm_finish";
    public const int NormOffset = 0;
    public const int ScaleOffset = 1;
    /// <summary>At most this many stage-1 blocks (and partial sums, stored from <see cref="PartialsOffset"/>).</summary>
    public const int MaxPartials = 256;
    public const int PartialsOffset = 2;
    public const int ScratchLength = PartialsOffset + MaxPartials;
    public const int Threads = 256;

    /// <summary>Stage-1 blocks: a function of n only (so the summation order, and the bits, never change), ≥ 16 elements per thread.</summary>
    public static int Partials(long n) => (int)Math.Clamp((n + 16L * Threads - 1) / (16L * Threads), 1, MaxPartials);

    public static void Launch(IComputeDevice device, DeviceSpan<float> scratch, DeviceSpan<float> gradient, float gradientScale, float clipNorm)
    {
        LaunchChecks.AtLeast(PartialsName, scratch, ScratchLength, "[GradientNorm.ScratchLength]");
        int n = LaunchChecks.Elements(PartialsName, gradient.Length, "gradient");
        int partials = Partials(n);
        var partialSums = scratch.Slice(PartialsOffset);
        KernelStubs.gradient_norm_partials(device, new(partials, Threads), partials: partialSums, gradient: gradient, n: n);
        KernelStubs.gradient_norm_finish(device, new(1, Threads), result: scratch, partials: partialSums, count: partials, gradient_scale: gradientScale, clip_norm: clipNorm);
    }
}

/// <summary>
/// sgd_step: p −= lr·(scale[0]·g + weightDecay·p) (OptimizerOps.SgdStep). parameters [n = parameters.Length];
/// gradient [≥ n]; scale: 1-element device span (GradientNorm's scratch at ScaleOffset).
/// </summary>
internal static class SgdStep
{
    public const string Name = "sgd_step";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> parameters, DeviceSpan<float> gradient, DeviceSpan<float> scale, float learningRate, float weightDecay)
    {
        int n = LaunchChecks.Elements(Name, parameters.Length, "parameters");
        LaunchChecks.AtLeast(Name, gradient, n, "[n = parameters.Length]");
        LaunchChecks.AtLeast(Name, scale, 1, "[1]");
        if (n == 0) return;
        ulong pPtr = parameters.Address, gPtr = gradient.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(pPtr, gPtr) ? (n + 3) / 4 : n, Threads);
        KernelStubs.sgd_step(device, new(blocks, Threads), parameters: parameters, gradient: gradient, scale: scale, learning_rate: learningRate, weight_decay: weightDecay, n: n);
    }
}

/// <summary>
/// adamw_step: torch.optim.AdamW at 1-based <c>step</c> with g = scale[0]·gradient (OptimizerOps.AdamWStep; the bias
/// corrections are computed here in fp32 exactly as the CPU op does). parameters, firstMoment, secondMoment
/// [n = parameters.Length]; gradient [≥ n]; scale: 1-element device span.
/// </summary>
internal static class AdamWStep
{
    public const string Name = "adamw_step";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<float> parameters, DeviceSpan<float> gradient, DeviceSpan<float> firstMoment,
        DeviceSpan<float> secondMoment, DeviceSpan<float> scale, float learningRate, float beta1, float beta2, float epsilon, float weightDecay, int step)
    {
        LaunchChecks.NotBelow(Name, step, 1);
        int n = LaunchChecks.Elements(Name, parameters.Length, "parameters");
        LaunchChecks.AtLeast(Name, gradient, n, "[n = parameters.Length]");
        LaunchChecks.AtLeast(Name, firstMoment, n, "[n = parameters.Length]");
        LaunchChecks.AtLeast(Name, secondMoment, n, "[n = parameters.Length]");
        LaunchChecks.AtLeast(Name, scale, 1, "[1]");
        if (n == 0) return;
        float bias1 = 1f - MathF.Pow(beta1, step);
        float bias2Root = MathF.Sqrt(1f - MathF.Pow(beta2, step));
        float stepSize = learningRate / bias1;
        float decay = 1f - learningRate * weightDecay;
        ulong pPtr = parameters.Address, gPtr = gradient.Address, mPtr = firstMoment.Address, vPtr = secondMoment.Address;
        int blocks = LaunchChecks.GridStrideBlocks(LaunchChecks.Aligned16(pPtr, gPtr, mPtr, vPtr) ? (n + 3) / 4 : n, Threads);
        KernelStubs.adamw_step(device, new(blocks, Threads), parameters: parameters, gradient: gradient, first_moment: firstMoment, second_moment: secondMoment, scale: scale, beta1: beta1, beta2: beta2, epsilon: epsilon, step_size: stepSize, bias2_root: bias2Root, decay: decay, n: n);
    }
}

/// <summary>
/// adafactor_step: AdafactorOps.Step on each of promptCount [rows, cols] matrices, g = scale[0]·gradient.
/// parameters, gradient [promptCount·rows·cols]; rowState [promptCount·rows]; colState [promptCount·cols]; scale: 1-element
/// device span. One block per matrix; β2 = 1 − step^decayRate and 1 − lr·wd are computed here in fp32 as the CPU op does.
/// </summary>
internal static class AdafactorStep
{
    public const string Name = "adafactor_step";
    public const int Threads = 512;
    /// <summary>Columns are staged in dynamic shared memory (4 bytes each): 96 KiB fits every GPU from sm_80 on.</summary>
    public const int MaxColumns = 24 * 1024;

    public static void Launch(IComputeDevice device, DeviceSpan<float> parameters, DeviceSpan<float> gradient, DeviceSpan<float> rowState,
        DeviceSpan<float> colState, DeviceSpan<float> scale, int promptCount, int rows, int cols, float learningRate, float decayRate,
        float clipThreshold, float epsilon, float weightDecay, int step)
    {
        LaunchChecks.NotBelow(Name, step, 1);
        LaunchChecks.NotBelow(Name, promptCount, 0);
        LaunchChecks.NotBelow(Name, rows, 1);
        LaunchChecks.NotBelow(Name, cols, 1);
        if (cols > MaxColumns) throw new ArgumentOutOfRangeException(nameof(cols), cols, $"{Name}: at most {MaxColumns} columns (shared memory).");
        long n = (long)promptCount * rows * cols;
        LaunchChecks.Elements(Name, n, "parameters");
        LaunchChecks.AtLeast(Name, parameters, n, "[K, rows, cols]");
        LaunchChecks.AtLeast(Name, gradient, n, "[K, rows, cols]");
        LaunchChecks.AtLeast(Name, rowState, (long)promptCount * rows, "[K, rows]");
        LaunchChecks.AtLeast(Name, colState, (long)promptCount * cols, "[K, cols]");
        LaunchChecks.AtLeast(Name, scale, 1, "[1]");
        if (promptCount == 0) return;
        float beta2 = 1f - MathF.Pow(step, decayRate);
        float decay = 1f - learningRate * weightDecay;
        KernelStubs.adafactor_step(device, new(promptCount, Threads, (uint)(cols * sizeof(float))), parameters: parameters, gradient: gradient, row_state: rowState, col_state: colState, scale: scale, rows: rows, cols: cols, beta2: beta2, learning_rate: learningRate, clip_threshold: clipThreshold, epsilon: epsilon, decay: decay);
    }
}

/// <summary>count_nonfinite: count[0] += NaN/±Inf values among <c>values</c> (no host sync; the host reads and clears the count).</summary>
internal static class CountNonFinite
{
    public const string Name = "count_nonfinite";
    public const int Threads = 256;

    public static void Launch(IComputeDevice device, DeviceSpan<int> count, DeviceSpan<float> values)
    {
        int n = LaunchChecks.Elements(Name, values.Length, "values");
        LaunchChecks.AtLeast(Name, count, 1, "[1]");
        if (n == 0) return;
        KernelStubs.count_nonfinite(device, new(LaunchChecks.GridStrideBlocks(n, Threads), Threads), count: count, values: values, n: n);
    }
}
