using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class LearningRateScheduleTests
{
    private static float[] Rates(LearningRateSchedule schedule, int steps) => [.. Enumerable.Range(1, steps).Select(s => schedule.At(s, steps, 0.8f))];

    [Test]
    public void ConstantIsThePeak() => Assert.That(Rates(LearningRateSchedule.Constant, 4), Is.EqualTo(new[] { 0.8f, 0.8f, 0.8f, 0.8f }));

    [Test]
    public void ConstantWithWarmupRampsFromZeroAsTransformersDoes() =>
        // get_constant_schedule_with_warmup(W=4): factor i/4 for i = 0..3, then 1 (i = step − 1).
        Assert.That(Rates(LearningRateSchedule.Parse("constant", 4), 6), Is.EqualTo(new[] { 0f, 0.2f, 0.4f, 0.6f, 0.8f, 0.8f }));

    [Test]
    public void LinearDecaysTowardsZeroAsTransformersDoes()
    {
        // get_linear_schedule_with_warmup(W=2, T=6): i/2 while i < 2, then (6 − i)/4.
        Assert.That(Rates(LearningRateSchedule.Parse("linear", 2), 6), Is.EqualTo(new[] { 0f, 0.4f, 0.8f, 0.6f, 0.4f, 0.2f }).Within(1e-6f));
        Assert.That(Rates(LearningRateSchedule.Parse("linear", 0), 4), Is.EqualTo(new[] { 0.8f, 0.6f, 0.4f, 0.2f }).Within(1e-6f));
    }

    [Test]
    public void UnknownScheduleIsRejected() => Assert.Throws<ArgumentException>(() => LearningRateSchedule.Parse("cosine", 0));
}
