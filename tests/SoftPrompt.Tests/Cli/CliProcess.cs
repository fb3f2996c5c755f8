using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace SoftPrompt.Tests.Cli;

/// <summary>
/// The built `softprompt` run as a child process, for what only a separate process shows: a signal that stops it,
/// a lock another run holds. Its stdout and stderr lines are collected as they come.
/// </summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process process;
    private readonly BlockingCollection<string> lines = [];
    private readonly StringBuilder output = new();
    private readonly StringBuilder standardOutput = new();

    private CliProcess(Process process) => this.process = process;

    /// <summary>The built command's executable in the test directory.</summary>
    public static string Executable => Path.Combine(TestContext.CurrentContext.TestDirectory, OperatingSystem.IsWindows() ? "SoftPrompt.Cli.exe" : "SoftPrompt.Cli");

    public static CliProcess Start(params string[] args) => Start(new ProcessStartInfo(Executable), args);

    /// <summary>Starts <paramref name="start"/> (a launcher such as mpirun already given its own arguments, or the command) with <paramref name="args"/> appended.</summary>
    public static CliProcess Start(ProcessStartInfo start, params string[] args)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        foreach (string arg in args) start.ArgumentList.Add(arg);
        var child = new CliProcess(new Process { StartInfo = start });
        child.process.OutputDataReceived += (_, e) => child.Add(e.Data, standardOutput: true);
        child.process.ErrorDataReceived += (_, e) => child.Add(e.Data);
        child.process.Start();
        child.process.BeginOutputReadLine();
        child.process.BeginErrorReadLine();
        return child;
    }

    public int Id => process.Id;

    /// <summary>Standard output and standard error, as their lines came.</summary>
    public string Output
    {
        get { lock (output) return output.ToString(); }
    }

    /// <summary>Standard output alone (a --json document).</summary>
    public string StandardOutput
    {
        get { lock (output) return standardOutput.ToString(); }
    }

    /// <summary>The first line (from now) that matches, or a failed test naming what the child printed.</summary>
    public string WaitForLine(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (lines.TryTake(out string? line, Remaining(deadline)))
            if (match(line)) return line;
        Assert.Fail($"the child printed no expected line in {timeout.TotalSeconds:F0} s; exited: {process.HasExited}; output:\n{Output}");
        return "";
    }

    /// <summary>Sends a POSIX signal (TERM, INT, KILL) as a scheduler or a shell would.</summary>
    public void Signal(string name)
    {
        using var kill = Process.Start("kill", ["-" + name, Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.That(kill.ExitCode, Is.Zero, $"kill -{name} {Id}");
    }

    public int WaitForExit(TimeSpan timeout)
    {
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"the child did not exit in {timeout.TotalSeconds:F0} s; output:\n{Output}");
        }
        process.WaitForExit(); // drains the redirected streams
        return process.ExitCode;
    }

    public void Dispose()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.Dispose();
    }

    private void Add(string? line, bool standardOutput = false)
    {
        if (line is null) return;
        lock (output)
        {
            output.AppendLine(line);
            if (standardOutput) this.standardOutput.AppendLine(line);
        }
        lines.Add(line);
    }

    private static TimeSpan Remaining(DateTime deadline) => deadline > DateTime.UtcNow ? deadline - DateTime.UtcNow : TimeSpan.Zero;
}
