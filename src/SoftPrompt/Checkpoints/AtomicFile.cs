using System.Diagnostics;
using System.Security.Cryptography;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// Replaces a file all at once: readers see the old file or the complete new one, never a torn one, even
/// if the process dies mid-write. The temp file sits in the target's directory so the rename cannot cross
/// file systems. Temp files a killed writer left are removed by the next write of the same target.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        RemoveStale(path);
        string temp = TempPath(path);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20))
            {
                write(stream);
                // Without fsync a crash after the rename can leave the new name pointing at unwritten blocks.
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e)
        {
            TryDelete(temp);
            if (e is IOException or UnauthorizedAccessException)
                throw new CheckpointException($"{path}: cannot write ({e.Message}); check that the directory exists, is writable and has space.", e);
            throw;
        }
    }

    /// <summary>A fresh name beside <paramref name="path"/> for a file that becomes it (or is only a probe of its directory).</summary>
    public static string TempPath(string path) => $"{path}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(TempBytes))}";

    /// <summary>
    /// Deletes the temp files of <paramref name="path"/> that a killed process left: named as <see cref="TempPath"/> names
    /// them, and older than this process (a temp file lives for one write, so a live writer's is younger; the output locks
    /// keep two runs off one target anyway).
    /// </summary>
    public static void RemoveStale(string path)
    {
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is null || !Directory.Exists(directory)) return;
        string name = Path.GetFileName(path);
        try
        {
            foreach (string temp in Directory.EnumerateFiles(directory, name + ".tmp-*"))
            {
                string suffix = Path.GetFileName(temp)[(name.Length + ".tmp-".Length)..];
                if (suffix.Length == 2 * TempBytes && suffix.All(char.IsAsciiHexDigitLower) && File.GetLastWriteTimeUtc(temp) < ProcessStart.Value)
                    TryDelete(temp);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* leftovers only take space */ }
    }

    private const int TempBytes = 6;
    private static readonly Lazy<DateTime> ProcessStart = new(() => Process.GetCurrentProcess().StartTime.ToUniversalTime());

    private static void TryDelete(string temp)
    {
        try { File.Delete(temp); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the original error matters more */ }
    }
}
