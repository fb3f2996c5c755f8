using System.IO.MemoryMappedFiles;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A whole file mapped read-only, with a pointer to its first byte that stays valid until <see cref="Dispose"/>.
/// Tensor files read their bytes straight from here, so opening a checkpoint copies nothing.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _start;

    private MappedFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* start, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _start = start;
        Length = length;
    }

    /// <param name="kind">What the file should be, for messages ("safetensors file").</param>
    /// <param name="minimumLength">Shorter files are refused with <paramref name="tooShort"/>'s message (an empty file cannot be mapped at all).</param>
    public static MappedFile Open(string path, string kind, long minimumLength, Func<long, string> tooShort)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CheckpointException($"{path}: cannot open the {kind} ({e.Message}).", e);
        }
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        bool pointerAcquired = false;
        try
        {
            long length = stream.Length;
            if (length < Math.Max(1, minimumLength)) throw new CheckpointException(tooShort(length));
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* start = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            pointerAcquired = true;
            return new MappedFile(path, map, view, start + view.PointerOffset, length);
        }
        catch
        {
            if (pointerAcquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public long Length { get; }

    /// <summary>The first byte; throws once disposed.</summary>
    public byte* Start
    {
        get
        {
            ObjectDisposedException.ThrowIf(_start == null, this);
            return _start;
        }
    }

    /// <summary><paramref name="length"/> bytes from <paramref name="offset"/>; the caller has checked both against <see cref="Length"/>.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length) => new(Start + offset, length);

    public void Dispose()
    {
        if (_start == null) return;
        _start = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
