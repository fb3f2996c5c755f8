using System.Text.RegularExpressions;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Tests.Cli;

public sealed class DoctorCommandTests
{
    [Test]
    public void DoctorChecksTheEmbeddedKernelsAgainstTheirLaunchers()
    {
        if (!EmbeddedPtx.IsAvailable) Assert.Ignore(EmbeddedPtx.NotBuiltMessage);
        var (_, stdout, stderr) = CliRunner.Run("doctor");
        var line = Regex.Match(stdout, @"\[ ok \] kernels: (\d+) PTX entry points match their launchers' signatures");
        Assert.That(line.Success, stdout + stderr);
        Assert.That(int.Parse(line.Groups[1].Value), Is.EqualTo(KernelAbi.ParsePtx(EmbeddedPtx.Load()!).Count));
        Assert.That(stdout, Does.Not.Contain("`device`"), "library setting names are shown as flags");
    }

    [Test]
    public void DoctorExitsNonZeroExactlyWhenItReportsAFailure()
    {
        var (code, stdout, stderr) = CliRunner.Run("doctor");
        Assert.That(code, Is.EqualTo(stdout.Contains("[FAIL]") ? 1 : 0), stdout + stderr);
        Assert.That(SoftPrompt.Cli.Commands.DoctorCommand.ExitCode(["[ ok ] a", "[info] no GPU here", "[warn] slow"]), Is.Zero);
        Assert.That(SoftPrompt.Cli.Commands.DoctorCommand.ExitCode(["[ ok ] a", "[FAIL] kernels: launcher and PTX disagree"]), Is.EqualTo(1));
    }
}
