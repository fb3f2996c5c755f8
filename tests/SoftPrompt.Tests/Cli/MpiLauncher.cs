using System.Diagnostics;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// Open MPI's mpirun for the data-parallel CLI tests: the built command started as N ranks on this machine. Tests skip
/// (Assert.Ignore, naming the fix) where mpirun is not installed.
/// </summary>
internal static class MpiLauncher
{
    private static readonly Lazy<string?> Found = new(() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "mpirun")).FirstOrDefault(File.Exists));

    public static void RequireOrSkip()
    {
        if (OperatingSystem.IsWindows() || Found.Value is null)
            Assert.Ignore("mpirun not found: install Open MPI with `tools/install-deps.sh mpi` (./build.sh test does) to run the data-parallel tests.");
    }

    /// <summary>`mpirun --oversubscribe -np <paramref name="ranks"/> softprompt ARGS`.</summary>
    public static CliProcess Start(int ranks, params string[] args)
    {
        RequireOrSkip();
        var start = new ProcessStartInfo(Found.Value!);
        // More ranks than cores on a CI machine; ranks yield the CPU while they wait in a collective.
        foreach (string a in new[] { "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), CliProcess.Executable })
            start.ArgumentList.Add(a);
        // CI containers run as root, which mpirun refuses unless told both of these.
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        OneThreadEach(start);
        return CliProcess.Start(start, args);
    }

    /// <summary>`softprompt ARGS` as one process without a launcher, with the threads a rank gets: the reference a group is compared with.</summary>
    public static CliProcess StartAlone(params string[] args)
    {
        var start = new ProcessStartInfo(CliProcess.Executable);
        OneThreadEach(start);
        return CliProcess.Start(start, args);
    }

    // One worker per rank: N ranks each with a pool as wide as the machine would only fight over its cores. And OpenBLAS
    // splits a GEMM differently over another thread count, which changes the last bits of a loss.
    private static void OneThreadEach(ProcessStartInfo start)
    {
        start.Environment["DOTNET_PROCESSOR_COUNT"] = "1";
        start.Environment["OPENBLAS_NUM_THREADS"] = "1";
    }

    /// <summary>Runs to the end and returns the exit code; fails the test when it takes longer than <paramref name="timeout"/>.</summary>
    public static (int ExitCode, string Output) Run(int ranks, TimeSpan timeout, params string[] args)
    {
        using var run = Start(ranks, args);
        int code = run.WaitForExit(timeout);
        return (code, run.Output);
    }
}
