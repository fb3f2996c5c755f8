using SoftPrompt.Engines;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// An engine whose scores are known by construction, for evaluation tests: a row's target token t costs |t − x| + 0.5
/// of log-likelihood, where x is the row's first input token, and t counts as a greedy match when t == x. So the label
/// closest to the first input token wins, and every number an evaluator reports can be worked out by hand.
/// With <see cref="TrainingLoss"/> set it also "trains": ForwardBackward returns that loss for the current step and
/// optimizer steps do nothing.
/// </summary>
internal sealed class ScriptedEngine(int promptLength = 2) : IPromptEngine
{
    public int ScoredBatches { get; private set; }
    /// <summary>The loss ForwardBackward reports, by 1-based optimizer step.</summary>
    public Func<int, float>? TrainingLoss { get; init; }
    private int step = 1;
    public string DeviceName => "scripted";
    public int EmbeddingSize => 4;
    public int VocabSize => 32;
    public int MaxPositions => 64;
    public int PromptCount => 1;
    public PromptLayout? PromptLayout { get; } = PromptLayout.Uniform(1, promptLength);

    public void ScoreRows(TokenBatch batch, Span<float> rowLogLikelihood, Span<int> rowGreedyMatches = default)
    {
        ScoredBatches++;
        for (int row = 0; row < batch.Rows; row++)
        {
            int first = batch.Tokens[row * batch.TokenLength];
            float score = 0;
            int matches = 0;
            foreach (int target in batch.Targets.AsSpan(row * batch.SequenceLength, batch.SequenceLength))
            {
                if (target == TokenBatch.Ignore) continue;
                score -= Math.Abs(target - first) + 0.5f;
                if (target == first) matches++;
            }
            rowLogLikelihood[row] = score;
            if (!rowGreedyMatches.IsEmpty) rowGreedyMatches[row] = matches;
        }
    }

    public void LoadPrompts(ReadOnlySpan<float> values, PromptLayout layout) => throw new NotSupportedException();
    /// <summary>A finite prompt (zeros): what a run's diagnosis of a non-finite loss reads.</summary>
    public void ReadPrompts(Span<float> destination) => destination.Clear();
    public float Forward(TokenBatch batch) => throw new NotSupportedException();
    public float ForwardBackward(TokenBatch batch, bool accumulate = false, float gradientWeight = 1f) => TrainingLoss?.Invoke(step) ?? throw new NotSupportedException();
    public void ReadPromptGradient(Span<float> destination) => throw new NotSupportedException();
    public void WritePromptGradient(ReadOnlySpan<float> source) => throw new NotSupportedException();
    public void OptimizerStep(OptimizerSettings settings, int step, float learningRate, float gradientScale = 1) =>
        this.step = TrainingLoss is null ? throw new NotSupportedException() : step + 1;
    public int OptimizerStateLength => 0;
    public void ReadOptimizerState(Span<float> destination) => throw new NotSupportedException();
    public void LoadOptimizerState(ReadOnlySpan<float> source) => throw new NotSupportedException();
    /// <summary>How often the gradient norm was read (on a GPU engine each read waits for the device).</summary>
    public int GradientNormReads { get; private set; }
    public float LastGradientNorm
    {
        get
        {
            GradientNormReads++;
            return 0.5f;
        }
    }
    public void ReadGradientNorms(Span<float> destination) => destination.Clear();
    public void Dispose() { }
}
