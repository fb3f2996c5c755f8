using System.Collections.Immutable;
using System.Text;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A PyTorch checkpoint (<c>pytorch_model.bin</c>) in torch.save's zip format (torch ≥ 1.6): entries
/// <c>&lt;archive&gt;/data.pkl</c> (the state dict, pickled), <c>&lt;archive&gt;/data/&lt;key&gt;</c> (one raw storage each),
/// <c>version</c> and sometimes <c>byteorder</c>. torch.save stores entries uncompressed, so every tensor is a byte
/// range of the file and reads map it in place, like safetensors. data.pkl is read by <see cref="StateDictUnpickler"/>,
/// which never runs code. Tensors that share a storage (tied weights) share bytes; a tensor must be a contiguous view
/// (any storage offset) lying inside its storage.
/// </summary>
public sealed class TorchZipFile : TensorFile
{
    private const string Resave = "re-save it with torch.save(torch.load(path), path) in torch >= 1.6, or convert it to safetensors in Python";

    private TorchZipFile(MappedFile file, IReadOnlyList<TensorInfo> tensors) : base(file, tensors, dataStart: 0) { }

    public static TorchZipFile Open(string path)
    {
        var file = MappedFile.Open(path, "PyTorch checkpoint", 4, length =>
            $"{path}: {length} bytes is too short for a PyTorch checkpoint (a zip archive); the file is truncated, re-download it.");
        try
        {
            CheckZipMagic(file);
            var entries = ZipEntries.Read(file, "the file is truncated or damaged; re-download it");
            var (archive, pickle) = FindPickle(file, entries);
            CheckByteOrder(file, entries, archive);
            var stateDict = StateDictUnpickler.Read(path, Bytes(file, pickle).ToArray());
            var tensors = stateDict.Select(t => Locate(file, entries, archive, t.Name, t.Tensor)).ToArray();
            return new TorchZipFile(file, tensors);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static unsafe void CheckZipMagic(MappedFile file)
    {
        byte* start = file.Start;
        if (start[0] == 'P' && start[1] == 'K') return;
        if (start[0] == 0x80) // pickle protocol byte: the legacy format, a pickle followed by raw storages
            throw new CheckpointException(
                $"{file.Path}: a legacy PyTorch checkpoint (one raw pickle, written by torch < 1.6 or with _use_new_zipfile_serialization=False); only torch.save's zip format can be read without running Python. {Capitalized(Resave)}.");
        throw new CheckpointException($"{file.Path}: not a PyTorch checkpoint (torch.save writes a zip archive, starting with 'PK'); the file is damaged or of another format, re-download it.");
    }

    /// <summary>torch.save names every entry "&lt;archive&gt;/…" after the file it first wrote ("archive" since torch 1.13).</summary>
    private static (string Archive, ZipEntry Pickle) FindPickle(MappedFile file, Dictionary<string, ZipEntry> entries)
    {
        var pickles = entries.Values.Where(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.IndexOf('/') == e.Name.Length - "/data.pkl".Length).ToList();
        if (pickles.Count != 1)
            throw new CheckpointException(
                $"{file.Path}: a zip archive with {(pickles.Count == 0 ? "no" : pickles.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))} '<archive>/data.pkl' entries, so not one torch.save checkpoint; re-download it.");
        var pickle = pickles[0];
        return (pickle.Name[..^"/data.pkl".Length], pickle);
    }

    private static void CheckByteOrder(MappedFile file, Dictionary<string, ZipEntry> entries, string archive)
    {
        if (!entries.TryGetValue(archive + "/byteorder", out var entry)) return; // absent before torch 2.1: little-endian
        string order = Encoding.ASCII.GetString(Bytes(file, entry)).Trim();
        if (order != "little")
            throw new CheckpointException($"{file.Path}: tensors were saved {order}-endian; this reader reads little-endian data only. Re-save the checkpoint on a little-endian machine.");
    }

    /// <summary>The tensor's bytes in the file, after checking its storage entry, dtype, contiguity and bounds.</summary>
    private static TensorInfo Locate(MappedFile file, Dictionary<string, ZipEntry> entries, string archive, string name, TorchTensor tensor)
    {
        var storage = tensor.Storage;
        string fix = $"tensor '{name}'";
        string entryName = $"{archive}/data/{storage.Key}";
        if (!entries.TryGetValue(entryName, out var entry))
            throw new CheckpointException($"{file.Path}: {fix} uses storage '{storage.Key}' but the archive has no entry '{entryName}'; the file is truncated or damaged, re-download it.");
        // torch.save never compresses, so a compressed entry means another tool re-zipped the file.
        if (entry.Method != ZipEntry.Stored || entry.Encrypted)
            throw new CheckpointException(
                $"{file.Path}: entry '{entryName}' is {(entry.Encrypted ? "encrypted" : $"compressed ({entry.MethodName})")}; torch.save stores entries uncompressed so they can be memory-mapped. The file was re-packed by another tool: {Resave}.");
        if (entry.CompressedSize != entry.Size)
            throw new CheckpointException($"{file.Path}: stored entry '{entryName}' declares {entry.Size} bytes but occupies {entry.CompressedSize}; the file is damaged, re-download it.");
        int size = storage.DType.ElementSize;
        // Compared by division: a crafted element count times the element size may not fit 64 bits.
        if (storage.ElementCount > entry.Size / size)
            throw new CheckpointException(
                $"{file.Path}: entry '{entryName}' holds {entry.Size} bytes but its storage declares {storage.ElementCount} {storage.DType} elements ({(double)storage.ElementCount * size:G4} bytes); the file is damaged, re-download it.");
        if (tensor.Shape.Length != tensor.Stride.Length || tensor.Shape.Any(s => s < 0) || tensor.StorageOffset < 0)
            throw new CheckpointException($"{file.Path}: {fix} has size {TensorInfo.FormatShape(tensor.Shape)}, stride {TensorInfo.FormatShape(tensor.Stride)} and storage offset {tensor.StorageOffset}, which do not describe a tensor; the file is damaged.");
        if (tensor.StorageOffset > storage.ElementCount)
            throw new CheckpointException(
                $"{file.Path}: {fix} starts at element {tensor.StorageOffset} of storage '{storage.Key}', which holds {storage.ElementCount}; the file is damaged, re-download it.");
        // The element count is checked against the storage as it grows, so a crafted size cannot overflow it.
        long count = 1;
        if (!tensor.Shape.Contains(0))
            foreach (long s in tensor.Shape)
            {
                if (count > storage.ElementCount / s)
                    throw new CheckpointException(
                        $"{file.Path}: {fix} has size {TensorInfo.FormatShape(tensor.Shape)}, more elements than storage '{storage.Key}' holds ({storage.ElementCount}); the file is damaged, re-download it.");
                count *= s;
            }
        else count = 0;
        if (!IsContiguous(tensor.Shape, tensor.Stride))
            throw new CheckpointException(
                $"{file.Path}: {fix} is a non-contiguous view (size {TensorInfo.FormatShape(tensor.Shape)}, stride {TensorInfo.FormatShape(tensor.Stride)}), which cannot be read in place; save it with .contiguous() (or convert the checkpoint in Python).");
        if (count > 0 && tensor.StorageOffset > storage.ElementCount - count)
            throw new CheckpointException(
                $"{file.Path}: {fix} (size {TensorInfo.FormatShape(tensor.Shape)}, {count} elements from offset {tensor.StorageOffset}) runs past the end of storage '{storage.Key}' ({storage.ElementCount} elements); the file is damaged, re-download it.");
        long begin = entry.DataOffset + tensor.StorageOffset * size;
        return new TensorInfo(name, storage.DType, [.. tensor.Shape], begin, begin + count * size, file.Path);
    }

    /// <summary>Row-major strides, ignoring dimensions of size 1 (any stride walks them), as torch's is_contiguous does.</summary>
    private static bool IsContiguous(long[] shape, long[] stride)
    {
        if (shape.Contains(0)) return true;
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] == 1) continue;
            if (stride[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    private static ReadOnlySpan<byte> Bytes(MappedFile file, ZipEntry entry)
    {
        if (entry.Method != ZipEntry.Stored || entry.Encrypted)
            throw new CheckpointException(
                $"{file.Path}: entry '{entry.Name}' is {(entry.Encrypted ? "encrypted" : $"compressed ({entry.MethodName})")}; torch.save stores entries uncompressed. The file was re-packed by another tool: {Resave}.");
        if (entry.Size > int.MaxValue || entry.Size != entry.CompressedSize)
            throw new CheckpointException($"{file.Path}: entry '{entry.Name}' declares {entry.Size} bytes stored in {entry.CompressedSize}; the file is damaged, re-download it.");
        return file.Span(entry.DataOffset, (int)entry.Size);
    }

    private static string Capitalized(string text) => char.ToUpperInvariant(text[0]) + text[1..];
}
