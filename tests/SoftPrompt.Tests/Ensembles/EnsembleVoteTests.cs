using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Ensembles;

/// <summary>Majority vote and mean probability on hand-built score tables [K prompts, C candidates] of log-likelihoods.</summary>
public sealed class EnsembleVoteTests
{
    private static (int Majority, int Mean, double[] MeanProbability) Decide(float[,] scores, int[]? votes = null)
    {
        int prompts = scores.GetLength(0), candidates = scores.GetLength(1);
        var flat = new float[prompts * candidates];
        for (int k = 0; k < prompts; k++)
            for (int c = 0; c < candidates; c++) flat[k * candidates + c] = scores[k, c];
        votes ??= [.. Enumerable.Range(0, prompts).Select(k => EnsembleVote.ArgMax(flat.AsSpan(k * candidates, candidates)))];
        var mean = new double[candidates];
        var (majority, byMean) = EnsembleVote.Decide(votes, flat, candidates, mean);
        return (majority, byMean, mean);
    }

    private static double[] Softmax(params double[] x) => [.. x.Select(v => Math.Exp(v) / x.Sum(Math.Exp))];

    [Test]
    public void MostVotesWin()
    {
        var (majority, mean, probability) = Decide(new float[,] { { -0.1f, -2f }, { -0.2f, -3f }, { -5f, -0.01f } });
        Assert.That(majority, Is.EqualTo(0));
        Assert.That(mean, Is.EqualTo(0));
        double expected = (Softmax(-0.1, -2)[0] + Softmax(-0.2, -3)[0] + Softmax(-5, -0.01)[0]) / 3;
        Assert.That(probability[0], Is.EqualTo(expected).Within(1e-6));
        Assert.That(probability.Sum(), Is.EqualTo(1).Within(1e-12));
    }

    [Test]
    public void TwoWeakVotesOutvoteOneConfidentPromptButNotItsProbability()
    {
        // Two prompts lean to label 0 (0.55), one is sure of label 1: the vote says 0, the mean probability says 1.
        var (majority, mean, _) = Decide(new float[,] { { -0.6f, -0.8f }, { -0.6f, -0.8f }, { -10f, 0f } });
        Assert.That(majority, Is.EqualTo(0));
        Assert.That(mean, Is.EqualTo(1));
    }

    [TestCase(-0.1f, -3f, -2f, -0.5f, 0)]
    [TestCase(-0.5f, -2f, -3f, -0.1f, 1)]
    public void ATiedVoteGoesToTheHigherSummedProbability(float a0, float a1, float b0, float b1, int expected)
    {
        // One vote each; the prompt that is surer of its label decides.
        var (majority, mean, _) = Decide(new float[,] { { a0, a1 }, { b0, b1 } });
        Assert.That(majority, Is.EqualTo(expected));
        Assert.That(mean, Is.EqualTo(expected), "with one vote each, the higher summed probability is the higher mean");
    }

    [Test]
    public void AThreeWayTieAmongThreeLabelsUsesTheSummedProbability()
    {
        var scores = new float[,] { { 0f, -1f, -1f }, { -1f, 0f, -2f }, { -0.5f, -0.5f, 0f } };
        var (majority, _, probability) = Decide(scores);
        Assert.That(probability.ToList().IndexOf(probability.Max()), Is.EqualTo(majority));
        Assert.That(majority, Is.EqualTo(1));
    }

    [Test]
    public void ATieInVotesAndProbabilityGoesToTheCandidateListedFirst()
    {
        var (majority, mean, probability) = Decide(new float[,] { { 0f, -1f }, { -1f, 0f } });
        Assert.That(probability[0], Is.EqualTo(probability[1]));
        Assert.That(majority, Is.EqualTo(0));
        Assert.That(mean, Is.EqualTo(0));
    }

    [Test]
    public void GivenVotesCountEvenWhereTheScoresDisagree()
    {
        // Generation: a prompt votes for the answer it decoded, which need not be the candidate it scores highest.
        var (majority, mean, _) = Decide(new float[,] { { -2f, -0.1f }, { -2f, -0.1f }, { -0.1f, -2f } }, votes: [0, 0, 1]);
        Assert.That(majority, Is.EqualTo(0));
        Assert.That(mean, Is.EqualTo(1));
    }

    [Test]
    public void ArgMaxKeepsTheFirstOfEqualScores() => Assert.That(EnsembleVote.ArgMax([-1f, -0.5f, -0.5f]), Is.EqualTo(1));

    [Test]
    public void VeryUnlikelyLabelsDoNotUnderflowTheProbabilities()
    {
        var (_, _, probability) = Decide(new float[,] { { -1000f, -1001f } });
        Assert.That(probability[0], Is.EqualTo(1 / (1 + Math.Exp(-1))).Within(1e-12));
    }

    [Test]
    public void AVoteOutsideTheCandidatesIsRejected() =>
        Assert.Throws<ArgumentException>(() => EnsembleVote.Decide([2], [-1f, -2f], 2, new double[2]));
}
