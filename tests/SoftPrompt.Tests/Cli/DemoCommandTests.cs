namespace SoftPrompt.Tests.Cli;

public sealed class DemoCommandTests
{
    [Test]
    public void TunedPromptsReachTheTaskTokensAccuracy()
    {
        var (code, stdout, stderr) = CliRunner.Run("demo", "--device", "cpu", "--tasks", "reverse,majority");
        Assert.That(code, Is.EqualTo(0), stdout + stderr);
        Assert.That(stdout, Does.Contain("2 of 2 tasks reach at least 90%"), stdout);
    }

    [Test]
    public void TooFewStepsDoNotReachIt()
    {
        var (code, stdout, _) = CliRunner.Run("demo", "--device", "cpu", "--tasks", "reverse", "--steps", "1");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("0 of 1 tasks reach"), stdout);
    }
}
