using System.Buffers.Binary;

namespace SoftPrompt.Checkpoints;

/// <summary>What <see cref="CheckpointConverter.Convert"/> wrote.</summary>
public sealed record ConversionResult(string OutputDirectory, string WeightsFile, int TensorCount, long DataBytes, IReadOnlyList<string> SourceFiles, IReadOnlyList<string> CopiedFiles);

/// <summary>
/// Rewrites a model directory's weights — whatever <see cref="CheckpointDirectory"/> reads: PyTorch .bin (sharded or
/// not) or safetensors — as one <c>model.safetensors</c> in a new directory, with config.json, the tokenizer files and
/// the directory's other small files copied beside it. Tensors keep their names, dtypes and shapes; names that share a
/// storage (tied weights) become separate copies, as safetensors has no aliasing. The data streams from the mapped
/// input to the output, so memory stays flat whatever the model's size. The output appears all at once: everything is
/// written to a temp directory beside it, flushed, then renamed into place, so a failed run leaves no half model; and
/// it must not exist yet (or be empty), so nothing — the inputs least of all — is overwritten.
/// </summary>
public static class CheckpointConverter
{
    /// <summary>Weight files of any framework: not copied (the converted safetensors replace the readable ones).</summary>
    private static readonly string[] WeightSuffixes = [".bin", ".pt", ".pth", ".ckpt", ".safetensors", ".h5", ".msgpack", ".onnx", ".gguf", ".index.json"];

    private const int CopyChunk = 1 << 24;

    public static ConversionResult Convert(string sourceDirectory, string outputDirectory)
    {
        string source = Path.GetFullPath(sourceDirectory), output = Path.GetFullPath(outputDirectory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        if (string.Equals(source.TrimEnd(Path.DirectorySeparatorChar), output, StringComparison.Ordinal))
            throw new CheckpointException($"{outputDirectory}: is the model directory being converted; give `outputDirectory` a new directory (nothing is converted in place).");
        RequireFreshOutput(outputDirectory, output);

        using var checkpoint = CheckpointDirectory.Open(sourceDirectory);
        // Data order as SafeTensorWriter's: largest elements first, then by name, so every tensor is naturally aligned.
        var tensors = checkpoint.TensorNames
            .Select(name => (Info: checkpoint.GetInfo(name), File: checkpoint.FileOf(name)))
            .OrderByDescending(t => t.Info.DType.ElementSize).ThenBy(t => t.Info.Name, StringComparer.Ordinal)
            .ToList();
        string parent = Path.GetDirectoryName(output)!;
        if (!Directory.Exists(parent))
            throw new CheckpointException($"{outputDirectory}: the parent directory {parent} does not exist; create it first.");

        string temp = AtomicFile.TempPath(output);
        var copied = new List<string>();
        long dataBytes;
        try
        {
            Directory.CreateDirectory(temp);
            string weights = Path.Combine(temp, CheckpointDirectory.SingleFileName);
            dataBytes = WriteSafetensors(weights, tensors);
            using (SafeTensorFile.Open(weights)) { } // the header we wrote must be one our own reader accepts
            foreach (string file in Directory.EnumerateFiles(sourceDirectory).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(file);
                if (WeightSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase))) continue;
                using (var from = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read))
                using (var to = new FileStream(Path.Combine(temp, name), FileMode.CreateNew, FileAccess.Write))
                {
                    from.CopyTo(to);
                    to.Flush(flushToDisk: true);
                }
                copied.Add(name);
            }
            if (Directory.Exists(output)) Directory.Delete(output); // empty, checked above; Move needs the name free
            Directory.Move(temp, output);
        }
        catch (Exception e)
        {
            TryDelete(temp);
            if (e is IOException or UnauthorizedAccessException)
                throw new CheckpointException($"{outputDirectory}: cannot write the converted model ({e.Message}); check that the parent directory is writable and has space.", e);
            throw;
        }
        return new ConversionResult(output, Path.Combine(output, CheckpointDirectory.SingleFileName), tensors.Count, dataBytes,
            checkpoint.Files.Select(f => Path.GetFileName(f.Path)).ToList(), copied);
    }

    private static void RequireFreshOutput(string given, string output)
    {
        if (File.Exists(output))
            throw new CheckpointException($"{given}: is a file; give `outputDirectory` a new directory.");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new CheckpointException($"{given}: already exists and is not empty; give `outputDirectory` a new directory (convert never overwrites files).");
    }

    private static unsafe long WriteSafetensors(string path, List<(TensorInfo Info, TensorFile File)> tensors)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" }; // transformers refuses safetensors without it
        var header = SafeTensorWriter.Header(metadata, tensors.Select(t => (t.Info.Name, t.Info.DType, (IReadOnlyList<long>)t.Info.Shape, t.Info.ByteLength)));
        long total = 0;
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var (info, file) in tensors)
        {
            byte* data = file.GetPointer(info.Name);
            for (long done = 0; done < info.ByteLength; done += CopyChunk)
                stream.Write(new ReadOnlySpan<byte>(data + done, (int)Math.Min(CopyChunk, info.ByteLength - done)));
            total += info.ByteLength;
        }
        stream.Flush(flushToDisk: true);
        return total;
    }

    private static void TryDelete(string directory)
    {
        try { if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the original error matters more */ }
    }
}
