namespace SoftPrompt.Cli.Files;

/// <summary>
/// What a path finally names: the device and inode of an existing file on Linux (so hard links and symlinks to one file
/// compare equal), and always the path with every symlink resolved (for files not yet written, and other systems).
/// </summary>
internal readonly record struct FileKey(string RealPath, (ulong Device, ulong Inode)? Inode)
{
    public static readonly StringComparer PathComparer = OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase;

    public static FileKey Of(string path)
    {
        string real = Resolve(path);
        return new FileKey(real, File.Exists(real) ? LinuxFiles.Identity(real) : null);
    }

    public bool SameFileAs(FileKey other) =>
        Inode is { } a && other.Inode is { } b ? a == b : PathComparer.Equals(RealPath, other.RealPath);

    /// <summary>The absolute path with every symlink along it resolved, also when its last parts do not exist yet.</summary>
    public static string Resolve(string path, int depth = 0)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full)!;
        string current = root;
        foreach (string part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            FileSystemInfo? target;
            try { target = new FileInfo(current).ResolveLinkTarget(returnFinalTarget: true); }
            catch (IOException) { target = null; } // a link loop or an unreadable link: compare by the name given
            // A resolved target may itself sit below a symlinked directory; 40 is the kernel's own limit on links followed.
            if (target is not null && depth < 40) current = Resolve(target.FullName, depth + 1);
        }
        return current;
    }
}
