using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Text;

public sealed class BatchSamplerTests
{
    [Test]
    public void BatchThatWrapsIntoAReshuffledEpochIsSizedForItsRows()
    {
        // 5 rows of very different lengths, batches of 2: every other batch straddles two shuffled epochs.
        var examples = new[] { 1, 9, 2, 30, 3 }.Select(n => new TokenizedExample(new int[n], [1])).ToList();
        var sampler = new BatchSampler(examples, 2, promptLength: 1, seed: 11, shuffle: true);
        for (int step = 0; step < 200; step++)
        {
            var batch = sampler.Next();
            Assert.That(batch.TokenLength, Is.EqualTo(Math.Max(batch.Lengths[0], batch.Lengths[1])));
        }
    }

    [Test]
    public void OrderSourceMustBeAPermutation()
    {
        var examples = new[] { 1, 2, 3 }.Select(n => new TokenizedExample(new int[n], [1])).ToList();
        Assert.Throws<InvalidOperationException>(() => _ = new BatchSampler(examples, 2, 1, () => [0, 0, 1]));
        Assert.Throws<InvalidOperationException>(() => _ = new BatchSampler(examples, 2, 1, () => [0, 1]));
    }
}
