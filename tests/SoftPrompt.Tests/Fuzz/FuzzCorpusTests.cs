using System.Diagnostics;
using SoftPrompt.Fuzz;

namespace SoftPrompt.Tests.Fuzz;

/// <summary>
/// Replays tests/SoftPrompt.Fuzz/corpus (the seeds, what `./build.sh fuzz` kept, and every crash and hang it found)
/// through each fuzz target's own code: no input may escape with anything but a clean one-line error, take longer than
/// the time bound, or allocate more than the memory bound (a length taken from the file must be checked before it sizes
/// an allocation).
/// </summary>
public sealed class FuzzCorpusTests
{
    private const long MaxAllocatedBytes = 256L << 20;
    private static readonly TimeSpan MaxTime = TimeSpan.FromSeconds(10);

    internal static string CorpusDir => Path.Combine(TestContext.CurrentContext.TestDirectory, "fuzz-corpus");

    public static IEnumerable<string> Targets => FuzzTargets.Names;

    internal static string WorkDir(string target) =>
        Path.Combine(Path.GetTempPath(), $"softprompt-fuzz-test-{target}-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}");

    [TestCaseSource(nameof(Targets))]
    public void CorpusReplaysWithoutCrash(string target)
    {
        string dir = Path.Combine(CorpusDir, target);
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        Assert.That(files.Where(f => Path.GetFileName(f).StartsWith("seed-", StringComparison.Ordinal)), Is.Not.Empty, $"no seeds under {dir}");
        string work = WorkDir(target);
        var failures = new List<string>();
        try
        {
            foreach (string file in files)
            {
                long allocated = GC.GetAllocatedBytesForCurrentThread();
                var clock = Stopwatch.StartNew();
                try
                {
                    FuzzTargets.RunExpectingCleanErrors(target, File.ReadAllBytes(file), work);
                }
                catch (Exception e)
                {
                    failures.Add($"{Path.GetRelativePath(dir, file)}: {e.GetType().Name}: {e.Message}");
                    continue;
                }
                allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
                if (clock.Elapsed > MaxTime) failures.Add($"{Path.GetRelativePath(dir, file)}: took {clock.Elapsed.TotalSeconds:F1} s");
                if (allocated > MaxAllocatedBytes) failures.Add($"{Path.GetRelativePath(dir, file)}: allocated {allocated >> 20} MiB");
            }
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
        Assert.That(failures, Is.Empty, $"{files.Count} inputs of {target}");
    }

    /// <summary>Every input afl++ saved as a crash or hang now fails (if at all) with one line that names the file.</summary>
    [TestCaseSource(nameof(Targets))]
    public void SavedCrashesGiveOneLineErrorsNamingTheFile(string target)
    {
        var saved = new[] { "crashes", "hangs" }.Select(k => Path.Combine(CorpusDir, target, k)).Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d)).Order(StringComparer.Ordinal).ToList();
        if (saved.Count == 0) Assert.Pass($"the fuzzer saved no crashes for {target}");
        string work = WorkDir(target);
        try
        {
            foreach (string file in saved)
            {
                try
                {
                    FuzzTargets.Run(target, File.ReadAllBytes(file), work);
                }
                catch (Exception e) when (FuzzTargets.IsCleanError(e, work))
                {
                    Assert.That(e.Message, Does.Contain(work), $"{file}: the error names the file");
                    Assert.That(e.Message, Does.Not.Contain('\n'), $"{file}: one line");
                }
            }
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }
}
