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

    public RunFiles Input(string flag, string? path)
    {
        if (path is not null) inputs.Add((flag, path));
        return this;
    }

    /// <summary>Every file directly in <paramref name="directory"/> (a model or adapter directory) is an input.</summary>
    public RunFiles InputDirectory(string flag, string directory)
    {
        if (Directory.Exists(directory))
            foreach (string file in Directory.EnumerateFiles(directory)) inputs.Add((flag, file));
        return this;
    }

    public RunFiles Output(string flag, string? path)
    {
        if (path is not null) outputs.Add((flag, path));
        return this;
    }

    public void Check()
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
