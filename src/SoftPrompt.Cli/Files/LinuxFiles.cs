using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SoftPrompt.Cli.Files;

/// <summary>
/// The Linux calls .NET does not expose: a file's device and inode (statx, whose buffer layout is the same on every
/// architecture, unlike stat's), and reading a file that another process holds under an exclusive lock (.NET's own
/// readers take a shared flock and would be refused). Every method answers null off Linux or when libc lacks the call.
/// </summary>
internal static unsafe partial class LinuxFiles
{
    private const string Libc = "libc.so.6";
    private const int CurrentDirectory = -100; // AT_FDCWD
    private const int EmptyPath = 0x1000; // AT_EMPTY_PATH: stat the descriptor itself
    private const uint InodeMask = 0x100; // STATX_INO
    private const int StatxSize = 256, InodeOffset = 32, DeviceMajorOffset = 136, DeviceMinorOffset = 140;

    [LibraryImport(Libc, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, byte* buffer);

    [LibraryImport(Libc, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "read")]
    private static partial nint Read(int descriptor, byte* buffer, nint count);

    [LibraryImport(Libc, EntryPoint = "close")]
    private static partial int Close(int descriptor);

    /// <summary>(device, inode) of what <paramref name="path"/> names, symlinks followed.</summary>
    public static (ulong Device, ulong Inode)? Identity(string path) => Stat(CurrentDirectory, path, 0);

    /// <summary>(device, inode) of an open file.</summary>
    public static (ulong Device, ulong Inode)? Identity(SafeFileHandle handle)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return Stat((int)handle.DangerousGetHandle(), "", EmptyPath);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>The first bytes of a file as UTF-8, read without taking a lock.</summary>
    public static string? ReadUnlocked(string path, int maxBytes = 512)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            int descriptor = Open(path, 0);
            if (descriptor < 0) return null;
            try
            {
                byte* buffer = stackalloc byte[maxBytes];
                nint read = Read(descriptor, buffer, maxBytes);
                return read <= 0 ? null : System.Text.Encoding.UTF8.GetString(buffer, (int)read);
            }
            finally { Close(descriptor); }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

    private static (ulong Device, ulong Inode)? Stat(int directory, string path, int flags)
    {
        if (!OperatingSystem.IsLinux()) return null;
        byte* buffer = stackalloc byte[StatxSize];
        try
        {
            if (Statx(directory, path, flags, InodeMask, buffer) != 0) return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
        ulong device = ((ulong)*(uint*)(buffer + DeviceMajorOffset) << 32) | *(uint*)(buffer + DeviceMinorOffset);
        return (device, *(ulong*)(buffer + InodeOffset));
    }
}
