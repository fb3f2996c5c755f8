using SoftPrompt.Checkpoints;

namespace SoftPrompt.Cli.Files;

/// <summary>
/// Proves a directory writable by creating and deleting a file in it. A run checks its output directories this way
/// before it starts: otherwise a missing or read-only one is found when the trained prompt is written, and it is lost.
/// </summary>
internal static class WritableDirectory
{
    /// <param name="create">Create the directory (and its parents) as the run would when it first writes there.</param>
    public static void Require(string flag, string directory, bool create)
    {
        if (create)
        {
            try { Directory.CreateDirectory(directory); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"{flag}: cannot create the directory {directory} ({Reason(e)}); choose another {flag}.");
            }
        }
        else if (!Directory.Exists(directory))
        {
            string what = File.Exists(directory) ? "is a file, not a directory" : "does not exist";
            throw new IOException($"{flag}: the directory {directory} {what}; create it or choose another {flag}.");
        }
        string target = Path.Combine(directory, ".softprompt-probe");
        AtomicFile.RemoveStale(target);
        string probe = AtomicFile.TempPath(target);
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{flag}: cannot write in the directory {directory} ({Reason(e)}); choose a writable one.");
        }
    }

    private static string Reason(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        FileNotFoundException or DirectoryNotFoundException => "files cannot be created there",
        _ => e.Message.TrimEnd('.'),
    };
}
