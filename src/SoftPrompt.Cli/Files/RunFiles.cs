namespace SoftPrompt.Cli.Files;

/// <summary>
/// The files a command reads and writes, by the flag that named them. <see cref="Check"/> runs before any work: it
/// refuses an output that is one of the inputs (a model file, the data, a prompt) or another output of the same run,
/// also through symlinks and hard links, so a mistyped flag cannot destroy what the run reads.
/// </summary>
internal sealed class RunFiles
{
    private readonly List<(string Flag, string Path)> inputs = [];
    private readonly List<(string Flag, string Path)> outputs = [];
    private readonly List<(string Flag, string Path)> outputDirectories = [];

    public RunFiles Input(string flag, string? path)
    {
        if (path is not null) inputs.Add((flag, path));
        return this;
    }

    /// <summary>Every file directly in <paramref name="directory"/> (a model or adapter directory) is an input; a file named instead is one.</summary>
    public RunFiles InputDirectory(string flag, string directory)
    {
        if (Directory.Exists(directory))
            foreach (string file in Directory.EnumerateFiles(directory)) inputs.Add((flag, file));
        else if (File.Exists(directory))
            inputs.Add((flag, directory));
        return this;
    }

    public RunFiles Output(string flag, string? path)
    {
        if (path is not null) outputs.Add((flag, path));
        return this;
    }

    /// <summary>A directory the run writes into (checkpoints, an adapter): created now if missing, as the run would.</summary>
    public RunFiles OutputDirectory(string flag, string? directory)
    {
        if (directory is not null) outputDirectories.Add((flag, directory));
        return this;
    }

    /// <summary>Refuses outputs that collide, then proves every output directory writable, before the run does any work.</summary>
    public void Check()
    {
        CheckCollisions();
        var checkedDirectories = new HashSet<string>(FileKey.PathComparer);
        foreach (var (flag, directory) in outputDirectories)
            if (checkedDirectories.Add(Path.GetFullPath(directory))) WritableDirectory.Require(flag, directory, create: true);
        foreach (var (flag, path) in outputs)
        {
            string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
            if (checkedDirectories.Add(directory)) WritableDirectory.Require(flag, directory, create: false);
        }
    }

    private void CheckCollisions()
    {
        var inputKeys = inputs.Select(i => (i.Flag, i.Path, Key: FileKey.Of(i.Path))).ToList();
        var outputKeys = new List<(string Flag, string Path, FileKey Key)>();
        foreach (var (flag, path) in outputs)
        {
            var key = FileKey.Of(path);
            foreach (var input in inputKeys)
                if (key.SameFileAs(input.Key))
                    throw new ArgumentException($"{flag} {path} is the same file as {input.Flag} {input.Path}: writing it would destroy an input of the run; choose another {flag}.");
            foreach (var other in outputKeys)
                if (key.SameFileAs(other.Key))
                    throw new ArgumentException($"{other.Flag} {other.Path} and {flag} {path} are the same file: one output would overwrite the other; give them different paths.");
            outputKeys.Add((flag, path, key));
        }
    }
}
