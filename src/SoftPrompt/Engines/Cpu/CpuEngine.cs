using System.Numerics;
using System.Runtime.CompilerServices;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// What every CPU reference engine shares (the CPU mirror of <see cref="DeviceEngine"/>): the prompts with their gradient
/// and optimizer (<see cref="CpuPromptState{T}"/>), the order of a training step (forward to the loss, then the
/// input-gradient-only reverse pass), scoring, and the GEMMs a frozen nn.Linear layer needs. Generic over float (use)
/// and double (gradient checks); a family supplies its forward and reverse pass over its own weights and activations.
/// </summary>
public abstract class CpuEngine<T> : IPromptEngine where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private protected readonly CpuPromptState<T> state;
    /// <summary>Multiplies the next reverse pass's gradient (see IPromptEngine.ForwardBackward).</summary>
    private protected T lossGradientWeight = T.One;

    private protected CpuEngine(int embeddingSize, int vocabSize, int maxPositions)
    {
        EmbeddingSize = embeddingSize;
        VocabSize = vocabSize;
        MaxPositions = maxPositions;
        state = new CpuPromptState<T>(embeddingSize);
    }

    /// <summary>
    /// Refuses, before allocating, activations this machine cannot hold: on Linux an allocation past physical memory is
    /// an OOM kill without a message, not an exception. <paramref name="lowerBound"/> (elements of T, a cheap floor) is
    /// checked first so that estimating itself never allocates for absurd sizes; then <paramref name="estimate"/> (bytes).
    /// </summary>
    private protected static void EnsureHostMemory(int rows, long positions, long lowerBound, Func<long> estimate)
    {
        var memory = GC.GetGCMemoryInfo();
        long free = memory.TotalAvailableMemoryBytes - GC.GetTotalMemory(forceFullCollection: false);
        long floor = lowerBound > long.MaxValue / Unsafe.SizeOf<T>() ? long.MaxValue : lowerBound * Unsafe.SizeOf<T>();
        long need = floor > free ? floor : Math.Max(floor, estimate());
        if (need > free)
            throw new InvalidOperationException($"A batch of {rows} rows × {positions / Math.Max(rows, 1)} positions needs about {need / (double)(1L << 30):F1} GiB of " +
                $"activations on the CPU; this machine has {Math.Max(free, 0) / (double)(1L << 30):F1} GiB free: use a smaller `TrainOptions.BatchSize` or shorter rows.");
    }

    public string DeviceName => "cpu";
    public int EmbeddingSize { get; }
    public int VocabSize { get; }
    /// <summary>The longest sequence (prompt included) a batch may hold.</summary>
    public int MaxPositions { get; }
    public int PromptCount => state.PromptCount;
    public PromptLayout? PromptLayout => state.Layout;

    /// <summary>The prompts [ΣP_k, d] packed as <see cref="PromptLayout"/> says, editable in place.</summary>
    public Span<T> Prompts => state.Prompts;
    /// <summary>dLoss/dPrompts from the last backward pass [ΣP_k, d].</summary>
    public ReadOnlySpan<T> PromptGradient => state.Gradient;

    public void LoadPrompts(ReadOnlySpan<T> values, PromptLayout layout) => state.Load(values, layout);
    public void LoadPrompts(ReadOnlySpan<T> values, int promptCount, int promptLength) => state.Load(values, Engines.PromptLayout.Uniform(promptCount, promptLength));
    public void LoadPrompts(ReadOnlySpan<float> values, PromptLayout layout) => state.Load(values, layout);
    public void LoadPrompts(ReadOnlySpan<float> values, int promptCount, int promptLength) => state.Load(values, Engines.PromptLayout.Uniform(promptCount, promptLength));
    public void ReadPrompts(Span<float> destination) => state.ReadPrompts(destination);
    public void ReadPromptGradient(Span<float> destination) => state.ReadGradient(destination);
    public void WritePromptGradient(ReadOnlySpan<float> source) => state.WriteGradient(source);
    public int OptimizerStateLength => state.OptimizerStateLength;
    public void ReadOptimizerState(Span<float> destination) => state.ReadOptimizerState(destination);
    public void LoadOptimizerState(ReadOnlySpan<float> source) => state.LoadOptimizerState(source);
    public float LastGradientNorm => state.LastGradientNorm;
    public void ReadGradientNorms(Span<float> destination) => state.ReadGradientNorms(destination);
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale = 1f)
        => state.OptimizerStep(settings, step, learningRate, gradientScale);

    public float Forward(TokenBatch batch) => float.CreateTruncating(Loss(batch));
    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f) =>
        float.CreateTruncating(LossAndGradient(batch, accumulate, T.CreateChecked(gradientWeight)));

    /// <summary>Mean cross-entropy over the batch's targets.</summary>
    public T Loss(TokenBatch batch) => RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: true);

    /// <summary>Mean cross-entropy, and dLoss/dPrompts into <see cref="PromptGradient"/> (added to it when accumulating).</summary>
    public T LossAndGradient(TokenBatch batch, bool accumulate = false) => LossAndGradient(batch, accumulate, T.One);

    /// <summary>As <see cref="LossAndGradient(TokenBatch, bool)"/>, with the gradient multiplied by <paramref name="gradientWeight"/>.</summary>
    public T LossAndGradient(TokenBatch batch, bool accumulate, T gradientWeight)
    {
        lossGradientWeight = gradientWeight;
        T loss = RunForward(batch, withGradient: true, countGreedyMatches: false, languageModelHead: true);
        RunBackward(batch, accumulate);
        return loss;
    }

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        BatchChecks.ScoreBuffers(batch, rowLogLikelihood, rowGreedyMatches);
        RunForward(batch, withGradient: false, countGreedyMatches: !rowGreedyMatches.IsEmpty, languageModelHead: true);
        Head.ScoreRows(batch.Rows, rowLogLikelihood, rowGreedyMatches);
    }

    public void Dispose() => ReleaseActivations();

    /// <summary>The LM head of the activations the last forward pass ran on.</summary>
    private protected abstract CpuLanguageModelHead<T> Head { get; }

    /// <summary>The forward pass of <paramref name="batch"/>: the mean target loss when <paramref name="languageModelHead"/> (else 0, for decoding), saving what the reverse pass needs.</summary>
    private protected abstract T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead);

    /// <summary>The reverse pass of the last forward pass into the prompt gradient (replacing it, or adding when <paramref name="accumulate"/>).</summary>
    private protected abstract void RunBackward(TokenBatch batch, bool accumulate);

    private protected abstract void ReleaseActivations();

    /// <summary>y [n, outDim] = x [n, inDim] · Wᵀ, W [outDim, inDim] (nn.Linear, no bias).</summary>
    private protected static void Project(Span<T> y, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, int n, int inDim, int outDim)
        => CpuGemm.Gemm(false, true, n, outDim, inDim, T.One, x, inDim, weight, inDim, T.Zero, y, outDim);

    /// <summary>y [n, outDim] = x · Wᵀ + b, b [outDim] (nn.Linear with a bias; an empty bias is none): the bias is written first, the GEMM accumulates onto it.</summary>
    private protected static void Project(Span<T> y, ReadOnlySpan<T> x, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, int n, int inDim, int outDim)
    {
        if (bias.IsEmpty)
        {
            Project(y, x, weight, n, inDim, outDim);
            return;
        }
        for (int r = 0; r < n; r++) bias.CopyTo(y.Slice(r * outDim, outDim));
        CpuGemm.Gemm(false, true, n, outDim, inDim, T.One, x, inDim, weight, inDim, T.One, y, outDim);
    }

    /// <summary>dx [n, inDim] (= or +=) dy [n, outDim] · W, W [outDim, inDim]: the only GEMM a frozen nn.Linear needs backward.</summary>
    private protected static void InputGradient(Span<T> dx, ReadOnlySpan<T> dy, ReadOnlySpan<T> weight, int n, int inDim, int outDim, bool accumulate = false)
        => CpuGemm.Gemm(false, false, n, inDim, outDim, T.One, dy, outDim, weight, inDim, accumulate ? T.One : T.Zero, dx, inDim);
}
