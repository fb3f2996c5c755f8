using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Cpu;

/// <summary>Prompt optimizer updates (PyTorch's definitions), mirrored by the device optimizer kernels.</summary>
public static class OptimizerOps
{
    /// <summary>Global L2 norm of g [N].</summary>
    public static T GlobalNorm<T>(ReadOnlySpan<T> gradient) where T : unmanaged, IBinaryFloatingPointIeee754<T>
        => T.Sqrt(TensorPrimitives.SumOfSquares(gradient));

    /// <summary>
    /// torch.optim.SGD without momentum: p −= lr · (gradScale·g + weightDecay·p). p, g [N].
    /// </summary>
    public static void SgdStep<T>(Span<T> parameters, ReadOnlySpan<T> gradient, T learningRate, T weightDecay, T gradientScale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Optimizer);
        for (int i = 0; i < parameters.Length; i++)
            parameters[i] -= learningRate * (gradientScale * gradient[i] + weightDecay * parameters[i]);
    }

    /// <summary>
    /// torch.optim.AdamW at 1-based <paramref name="step"/>: p ·= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
    /// p −= (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε), with g = gradScale·gradient. p, g, m, v [N].
    /// </summary>
    public static void AdamWStep<T>(Span<T> parameters, ReadOnlySpan<T> gradient, Span<T> firstMoment, Span<T> secondMoment,
        T learningRate, T beta1, T beta2, T epsilon, T weightDecay, int step, T gradientScale)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Optimizer);
        T bias1 = T.One - T.Pow(beta1, T.CreateChecked(step));
        T bias2Root = T.Sqrt(T.One - T.Pow(beta2, T.CreateChecked(step)));
        T stepSize = learningRate / bias1;
        T decay = T.One - learningRate * weightDecay;
        for (int i = 0; i < parameters.Length; i++)
        {
            T g = gradientScale * gradient[i];
            T m = beta1 * firstMoment[i] + (T.One - beta1) * g;
            T v = beta2 * secondMoment[i] + (T.One - beta2) * g * g;
            firstMoment[i] = m;
            secondMoment[i] = v;
            parameters[i] = parameters[i] * decay - stepSize * m / (T.Sqrt(v) / bias2Root + epsilon);
        }
    }
}

/// <summary>Adafactor for one [rows, cols] parameter matrix (Shazeer &amp; Stern 2018; Hugging Face's update rule).</summary>
public static class AdafactorOps
{
    /// <summary>
    /// p, g [rows, cols]; rowState [rows], colState [cols] (factored second moments); 1-based step.
    /// β2 = 1 − t^decayRate; R = β2·R + (1−β2)·mean_c(g² + ε); C = β2·C + (1−β2)·mean_r(g² + ε);
    /// u = g · rsqrt(R / mean(R)) ⊗ rsqrt(C); u /= max(1, RMS(u)/clipThreshold);
    /// p = p·(1 − lr·wd) − lr·u. g is scaled by gradientScale first.
    /// </summary>
    public static void Step<T>(Span<T> parameters, ReadOnlySpan<T> gradient, Span<T> rowState, Span<T> colState, int rows, int cols,
        T learningRate, T decayRate, T clipThreshold, T epsilon, T weightDecay, int step, T gradientScale)
        where T : unmanaged, System.Numerics.IBinaryFloatingPointIeee754<T>
    {
        using var timing = CpuOpTimes.Measure(CpuOp.Optimizer);
        T beta2 = T.One - T.Pow(T.CreateChecked(step), decayRate);
        T oneMinus = T.One - beta2;
        for (int r = 0; r < rows; r++)
        {
            T sum = T.Zero;
            for (int c = 0; c < cols; c++) { T g = gradientScale * gradient[r * cols + c]; sum += g * g + epsilon; }
            rowState[r] = beta2 * rowState[r] + oneMinus * sum / T.CreateChecked(cols);
        }
        for (int c = 0; c < cols; c++)
        {
            T sum = T.Zero;
            for (int r = 0; r < rows; r++) { T g = gradientScale * gradient[r * cols + c]; sum += g * g + epsilon; }
            colState[c] = beta2 * colState[c] + oneMinus * sum / T.CreateChecked(rows);
        }
        T rowMean = T.Zero;
        for (int r = 0; r < rows; r++) rowMean += rowState[r];
        rowMean /= T.CreateChecked(rows);
        T squares = T.Zero;
        for (int r = 0; r < rows; r++)
        {
            T rowFactor = T.One / T.Sqrt(rowState[r] / rowMean);
            for (int c = 0; c < cols; c++)
            {
                T u = gradientScale * gradient[r * cols + c] * rowFactor / T.Sqrt(colState[c]);
                squares += u * u;
            }
        }
        T rms = T.Sqrt(squares / T.CreateChecked(rows * cols));
        T divisor = T.Max(T.One, rms / clipThreshold);
        T decay = T.One - learningRate * weightDecay;
        for (int r = 0; r < rows; r++)
        {
            T rowFactor = T.One / T.Sqrt(rowState[r] / rowMean);
            for (int c = 0; c < cols; c++)
            {
                T u = gradientScale * gradient[r * cols + c] * rowFactor / T.Sqrt(colState[c]) / divisor;
                parameters[r * cols + c] = parameters[r * cols + c] * decay - learningRate * u;
            }
        }
    }
}
