using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SoftPrompt.Cli.Files;

/// <summary>
/// An exclusive lock on something a run writes (its output prefix, its checkpoint directory), held for the run's
/// lifetime, so that two runs cannot interleave one metrics log or prune each other's checkpoints. The lock is the open
/// file (FileShare.None, a flock on Unix), never the file's existence: the OS lets go when the process dies, so a killed
/// run leaves at most a stale file that blocks nobody. The file names its holder for the run that is refused.
/// </summary>
internal sealed class RunLock : IDisposable
{
    // Another run may take the lock file between our open and its deletion by the holder: a few retries settle it.
    private const int Attempts = 10;
    private readonly FileStream stream;
    private readonly string path;

    private RunLock(FileStream stream, string path)
    {
        this.stream = stream;
        this.path = path;
    }

    /// <param name="path">The lock file.</param>
    /// <param name="flag">The flag that named what is locked, and <paramref name="target"/> its value, for the refusal.</param>
    public static RunLock Acquire(string path, string flag, string target)
    {
        for (int attempt = 1; ; attempt++)
        {
            FileStream stream;
            try
            {
                // Windows cannot delete a file it holds unshared, so there the file goes when the handle closes.
                stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1,
                    OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
            }
            catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException))
            {
                throw new IOException($"{flag} {target} is in use by another run ({Holder(path)}, lock {path}); wait for it to end or choose another {flag}.");
            }
            // A holder deletes the file as it lets go: a lock on a name it just deleted guards nothing, so lock the new file.
            if (attempt < Attempts && LinuxFiles.Identity(stream.SafeFileHandle) is { } held && LinuxFiles.Identity(path) != held)
            {
                stream.Dispose();
                continue;
            }
            var started = Process.GetCurrentProcess().StartTime.ToUniversalTime();
            stream.SetLength(0);
            stream.Write(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"pid {Environment.ProcessId} on {Environment.MachineName}, started {started:yyyy-MM-dd HH:mm:ss}Z\n")));
            stream.Flush();
            return new RunLock(stream, path);
        }
    }

    public void Dispose()
    {
        // Deleted while still held, so no other run can have locked this file in the meantime.
        if (!OperatingSystem.IsWindows())
        {
            try { File.Delete(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* a stale file blocks nobody */ }
        }
        stream.Dispose();
    }

    private static string Holder(string path) => LinuxFiles.ReadUnlocked(path)?.Trim() is { Length: > 0 } holder ? "held by " + holder : "holder unknown";
}
