using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Text;

public sealed class LengthBucketsTests
{
    /// <summary>Mostly short rows with a long tail, the shape of real text datasets.</summary>
    private static List<TokenizedExample> Skewed(int count, int seed)
    {
        var random = new Random(seed);
        var examples = new List<TokenizedExample>(count);
        for (int i = 0; i < count; i++)
        {
            int input = random.NextDouble() < 0.9 ? random.Next(4, 24) : random.Next(100, 400);
            examples.Add(new TokenizedExample(new int[input], [1]));
        }
        return examples;
    }

    [TestCase(1000, 8)]
    [TestCase(1003, 8)]
    [TestCase(5, 8)]
    [TestCase(7, 1)]
    public void EveryEpochIsAPermutation(int count, int batchSize)
    {
        var buckets = new LengthBuckets(Skewed(count, 1), batchSize, seed: 3, chunkBatches: 4);
        for (int epoch = 0; epoch < 5; epoch++)
            Assert.That(buckets.NextEpoch().Order(), Is.EqualTo(Enumerable.Range(0, count)), $"epoch {epoch}");
    }

    [Test]
    public void BucketedOrderPadsFarLessThanARandomOne()
    {
        var examples = Skewed(2000, 2);
        var random = Enumerable.Range(0, examples.Count).ToArray();
        new Random(4).Shuffle(random);
        long randomPadding = LengthBuckets.Padding(examples, random, 16);
        long bucketedPadding = LengthBuckets.Padding(examples, new LengthBuckets(examples, 16, seed: 4).NextEpoch(), 16);
        Assert.That(bucketedPadding, Is.LessThan(randomPadding / 4), $"bucketed {bucketedPadding} vs random {randomPadding}");
    }

    [Test]
    public void SamplerBatchesStayBucketedAcrossEpochBoundaries()
    {
        // 1003 rows with batch 16: every epoch starts mid-batch, so alignment has to follow the wrap.
        var examples = Skewed(1003, 5);
        const int batchSize = 16;
        long Padding(BatchSampler sampler)
        {
            long padding = 0;
            while (sampler.Epoch < 4)
            {
                var batch = sampler.Next();
                for (int row = 0; row < batch.Rows; row++) padding += batch.TokenLength - batch.Lengths[row];
            }
            return padding;
        }
        long shuffled = Padding(new BatchSampler(examples, batchSize, promptLength: 4, seed: 6, shuffle: true));
        long bucketed = Padding(new BatchSampler(examples, batchSize, promptLength: 4, new LengthBuckets(examples, batchSize, seed: 6).NextEpoch));
        Assert.That(bucketed, Is.LessThan(shuffled / 4), $"bucketed {bucketed} vs shuffled {shuffled}");
    }

    [Test]
    public void SamplerVisitsEveryRowOncePerEpoch()
    {
        var examples = Skewed(96, 7);
        var sampler = new BatchSampler(examples, 8, promptLength: 2, new LengthBuckets(examples, 8, seed: 8, chunkBatches: 3).NextEpoch);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var lengths = new List<int>();
            for (int step = 0; step < 96 / 8; step++)
            {
                var batch = sampler.Next();
                for (int row = 0; row < batch.Rows; row++) lengths.Add(batch.Lengths[row]);
            }
            Assert.That(lengths.Order(), Is.EqualTo(examples.Select(e => e.Length).Order()), $"epoch {epoch}");
        }
    }
}
