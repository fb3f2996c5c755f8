using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class PromptNeighborsTests
{
    [Test]
    public void APromptMadeOfTokenEmbeddingsHasThoseTokensAsNearestNeighbours()
    {
        const int vocab = 50, width = 16;
        var random = new Random(3);
        var table = Enumerable.Range(0, vocab * width).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        int[] ids = [7, 0, 49, 7, 23];
        var prompt = ids.SelectMany(id => table.AsSpan(id * width, width).ToArray().Select(v => v * 3f)).ToArray();

        var neighbors = PromptNeighbors.Find(prompt, table, width, k: 4);

        Assert.That(neighbors.Select(n => n.Nearest[0].TokenId), Is.EqualTo(ids));
        Assert.That(neighbors.Select(n => n.Nearest[0].Cosine), Is.All.EqualTo(1f).Within(1e-5));
        Assert.That(neighbors.All(n => n.Nearest.Length == 4 && n.Nearest.Zip(n.Nearest.Skip(1)).All(p => p.First.Cosine >= p.Second.Cosine)));
    }

    [Test]
    public void CohesionIsOneForIdenticalNeighboursAndLowForOrthogonalOnes()
    {
        float[] table = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        var tight = PromptNeighbors.Find([1, 0, 0], [1, 0, 0, 1, 0, 0, 0, 1, 0], 3, k: 2);
        Assert.That(tight[0].Cohesion, Is.EqualTo(1f).Within(1e-6));
        var loose = PromptNeighbors.Find([1, 1, 1], table, 3, k: 3);
        Assert.That(loose[0].Cohesion, Is.LessThan(0.6f));
    }
}
