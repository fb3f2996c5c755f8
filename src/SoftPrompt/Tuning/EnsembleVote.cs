namespace SoftPrompt.Tuning;

/// <summary>
/// How K prompts' answers to one example become one answer. The candidates are a classification task's labels, or
/// the distinct answers the prompts decoded; <c>scores</c> [K, C] holds each prompt's summed log-likelihood of each
/// candidate. A prompt's probability of a candidate is the softmax of its scores over the candidates (so it sums to 1
/// over the candidates, as rank classification's label probabilities do).
/// <list type="bullet">
/// <item>Majority vote: each prompt votes (for its best-scoring label, or for the answer it decoded); most votes win.
/// A tie goes to the tied candidate with the highest probability summed over all K prompts, and a tie in that too to
/// the candidate listed first.</item>
/// <item>Mean probability: the candidate with the highest probability averaged over the K prompts (ties: listed first).</item>
/// </list>
/// </summary>
public static class EnsembleVote
{
    /// <summary>The first index of the largest value (rank classification's tie rule: the label listed first).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) throw new ArgumentException("No candidates.", nameof(values));
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    /// <summary>
    /// Both decisions for one example. <paramref name="votes"/> [K]: the candidate each prompt chose;
    /// <paramref name="scores"/> [K, C] row-major; <paramref name="meanProbability"/> [C] receives each candidate's
    /// probability averaged over the prompts.
    /// </summary>
    public static (int Majority, int MeanProbability) Decide(ReadOnlySpan<int> votes, ReadOnlySpan<float> scores, int candidates, Span<double> meanProbability)
    {
        int prompts = votes.Length;
        if (prompts == 0 || candidates <= 0) throw new ArgumentException("An ensemble decision needs at least one prompt and one candidate.");
        if (scores.Length != prompts * candidates) throw new ArgumentException($"Scores hold {scores.Length} values; {prompts} prompts × {candidates} candidates need {prompts * candidates}.");
        if (meanProbability.Length != candidates) throw new ArgumentException($"meanProbability holds {meanProbability.Length} values for {candidates} candidates.");

        meanProbability.Clear();
        for (int k = 0; k < prompts; k++) AddSoftmax(scores.Slice(k * candidates, candidates), meanProbability, 1.0 / prompts);

        int[] count = new int[candidates];
        foreach (int vote in votes)
        {
            if ((uint)vote >= (uint)candidates) throw new ArgumentException($"A vote for candidate {vote}, outside 0..{candidates - 1}.");
            count[vote]++;
        }
        int majority = 0, mean = 0;
        for (int c = 1; c < candidates; c++)
        {
            // The summed probability is K × the mean, so comparing means breaks vote ties the same way.
            if (count[c] > count[majority] || (count[c] == count[majority] && meanProbability[c] > meanProbability[majority])) majority = c;
            if (meanProbability[c] > meanProbability[mean]) mean = c;
        }
        return (majority, mean);
    }

    /// <summary>Adds weight × softmax(<paramref name="logLikelihoods"/>) to <paramref name="sum"/>; in double, shifted by the maximum so very unlikely candidates do not underflow the rest.</summary>
    public static void AddSoftmax(ReadOnlySpan<float> logLikelihoods, Span<double> sum, double weight = 1)
    {
        double max = double.NegativeInfinity;
        foreach (float value in logLikelihoods) max = Math.Max(max, value);
        double total = 0;
        foreach (float value in logLikelihoods) total += Math.Exp(value - max);
        for (int i = 0; i < logLikelihoods.Length; i++) sum[i] += weight * Math.Exp(logLikelihoods[i] - max) / total;
    }
}
