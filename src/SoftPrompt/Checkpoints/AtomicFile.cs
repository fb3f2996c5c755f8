using System.Security.Cryptography;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// Replaces a file all at once: readers see the old file or the complete new one, never a torn one, even
/// if the process dies mid-write. The temp file sits in the target's directory so the rename cannot cross
/// file systems.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
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
    public static string TempPath(string path) => $"{path}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";

    private static void TryDelete(string temp)
    {
        try { File.Delete(temp); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the original error matters more */ }
    }
}
