using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class BatchSamplerTests
{
    [Test]
    public void EveryRowAppearsOncePerEpochAndBatchesSpanEpochBoundaries()
    {
        var examples = Enumerable.Range(0, 7).Select(i => new TokenizedExample(Enumerable.Repeat(i, 1 + i % 4).ToArray(), [i])).ToList();
        var sampler = new BatchSampler(examples, batchSize: 3, promptLength: 2, seed: 5, shuffle: true);
        var seen = new List<int>();
        for (int step = 0; step < 7; step++)
        {
            var batch = sampler.Next();
            Assert.That(batch.Rows, Is.EqualTo(3));
            for (int row = 0; row < batch.Rows; row++) seen.Add(batch.RowTokens(row)[^1]);
        }
        Assert.That(seen.Take(7).Order(), Is.EqualTo(Enumerable.Range(0, 7)));
        Assert.That(seen.Skip(7).Take(7).Order(), Is.EqualTo(Enumerable.Range(0, 7)));
        Assert.That(seen.Skip(14).Take(7).Order(), Is.EqualTo(Enumerable.Range(0, 7)));
    }

    [Test]
    public void WithoutShuffleRowsComeInFileOrder()
    {
        var examples = Enumerable.Range(0, 4).Select(i => new TokenizedExample([i], [i])).ToList();
        var sampler = new BatchSampler(examples, 4, 1, seed: 0, shuffle: false);
        var batch = sampler.Next();
        Assert.That(Enumerable.Range(0, 4).Select(r => batch.RowTokens(r)[0]), Is.EqualTo(new[] { 0, 1, 2, 3 }));
    }
}
