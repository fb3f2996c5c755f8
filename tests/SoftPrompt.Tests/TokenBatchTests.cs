using SoftPrompt.Engines;

namespace SoftPrompt.Tests;

public sealed class TokenBatchTests
{
    [Test]
    public void TargetsSitOnePositionBeforeTheTokenTheyPredict()
    {
        var batch = new TokenBatch(rowCapacity: 2, tokenCapacity: 5, promptLength: 3);
        batch.Reset(4);
        batch.AddRow([7, 8], [9, 10]);
        batch.AddRow([], [4]);
        Assert.That(batch.SequenceLength, Is.EqualTo(7));
        Assert.That(batch.Targets.AsSpan(0, 7).ToArray(), Is.EqualTo(new[] { -1, -1, -1, -1, 9, 10, -1 }));
        Assert.That(batch.Targets.AsSpan(7, 7).ToArray(), Is.EqualTo(new[] { -1, -1, 4, -1, -1, -1, -1 }));
        Assert.That(batch.TargetCount, Is.EqualTo(3));
        Assert.That(batch.RowTokens(1).ToArray(), Is.EqualTo(new[] { 4 }));
    }

    [Test]
    public void RejectsRowsThatCannotBeScored()
    {
        var batch = new TokenBatch(1, 3, 0);
        batch.Reset(3);
        Assert.Throws<ArgumentException>(() => batch.AddRow([1], []));
        Assert.Throws<ArgumentException>(() => batch.AddRow([], [1]));
        Assert.Throws<ArgumentException>(() => batch.AddRow([1, 2], [3, 4]));
    }
}
