using System.Globalization;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>
/// A directory of training checkpoints named checkpoint-&lt;step, 8 digits&gt;.safetensors. Each is written atomically
/// (temp file + rename), and only after it is complete are checkpoints beyond the newest <c>keepLast</c> deleted, so
/// a crash at any moment leaves at least one whole checkpoint.
/// </summary>
public sealed class CheckpointStore
{
    private const string Prefix = "checkpoint-";
    private const string Suffix = ".safetensors";

    /// <param name="keepLast">How many of the newest checkpoints to keep; 0 keeps all.</param>
    public CheckpointStore(string directory, int keepLast = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keepLast);
        Directory = directory;
        KeepLast = keepLast;
    }

    public string Directory { get; }
    public int KeepLast { get; }

    public string PathOf(int step) => Path.Combine(Directory, $"{Prefix}{step.ToString("D8", CultureInfo.InvariantCulture)}{Suffix}");

    public string Save(TrainingCheckpoint checkpoint)
    {
        try { System.IO.Directory.CreateDirectory(Directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{Directory}: cannot create the checkpoint directory ({e.Message}); choose a writable `CheckpointStore` directory.", e);
        }
        string path = PathOf(checkpoint.Step);
        checkpoint.Save(path);
        if (KeepLast > 0)
            foreach (var (_, old) in List().SkipLast(KeepLast))
                File.Delete(old);
        return path;
    }

    /// <summary>The checkpoints present, oldest first.</summary>
    public IReadOnlyList<(int Step, string Path)> List()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        var found = new List<(int, string)>();
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, Prefix + "*" + Suffix))
        {
            string name = Path.GetFileName(path);
            if (int.TryParse(name.AsSpan(Prefix.Length, name.Length - Prefix.Length - Suffix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int step))
                found.Add((step, path));
        }
        found.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return found;
    }

    /// <summary>
    /// The newest checkpoint that loads, or null when there is none. A damaged newer one (which atomic writes make
    /// unlikely, but a copied or truncated directory can have) is reported through <paramref name="warn"/> and skipped.
    /// </summary>
    public TrainingCheckpoint? LoadLatest(Action<string>? warn, out string? path)
    {
        foreach (var (_, candidate) in List().Reverse())
        {
            try
            {
                var checkpoint = TrainingCheckpoint.Load(candidate);
                path = candidate;
                return checkpoint;
            }
            catch (CheckpointException e)
            {
                warn?.Invoke($"skipping {candidate}: {e.Message}");
            }
        }
        path = null;
        return null;
    }
}
