using System.Buffers.Binary;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A memory-mapped safetensors file: 8-byte little-endian header length N, N bytes of JSON, then the data.
/// The header is validated when the file opens; reading is <see cref="TensorFile"/>'s.
/// </summary>
public sealed unsafe class SafeTensorFile : TensorFile
{
    private SafeTensorFile(MappedFile file, IReadOnlyList<TensorInfo> tensors, long dataStart, IReadOnlyDictionary<string, string> metadata)
        : base(file, tensors, dataStart) => Metadata = metadata;

    public static SafeTensorFile Open(string path)
    {
        var file = MappedFile.Open(path, "safetensors file", 8, length =>
            $"{path}: {length} bytes is too short for a safetensors file (it starts with an 8-byte header length); the file is truncated, re-download it.");
        try
        {
            byte* start = file.Start;
            long length = file.Length;
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(start, 8));
            if (headerLength > (ulong)(length - 8))
                throw new CheckpointException($"{path}: header length {headerLength} runs past the end of the file ({length} bytes); {NotSafetensorsHint(start)}.");
            if (headerLength > SafeTensorHeader.MaxLength)
                throw new CheckpointException($"{path}: header length {headerLength} exceeds the {SafeTensorHeader.MaxLength}-byte limit safetensors allows; the file is corrupt.");
            long dataStart = 8 + (long)headerLength;
            var (tensors, metadata) = SafeTensorHeader.Parse(new ReadOnlySpan<byte>(start + 8, (int)headerLength), length - dataStart, path);
            return new SafeTensorFile(file, tensors, dataStart, metadata);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The header's "__metadata__" (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private static string NotSafetensorsHint(byte* start)
    {
        // PyTorch's .bin files are zip archives ("PK") or raw pickles (protocol byte 0x80).
        bool pytorch = (start[0] == (byte)'P' && start[1] == (byte)'K') || start[0] == 0x80;
        return pytorch
            ? $"this looks like a PyTorch checkpoint (.bin), not safetensors; open it with {nameof(TorchZipFile)}, or name it pytorch_model.bin so a model directory loads it"
            : "the file is truncated or not safetensors; re-download it";
    }
}
