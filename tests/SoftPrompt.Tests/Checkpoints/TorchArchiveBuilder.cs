using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace SoftPrompt.Tests.Checkpoints;

/// <summary>
/// Hand-assembles pickles opcode by opcode (protocol 2, as torch.save writes them) so tests can build the hostile
/// data.pkl files a real torch.save never produces.
/// </summary>
internal sealed class PickleBuilder
{
    private readonly List<byte> _bytes = [0x80, 2];

    public byte[] ToArray() => [.. _bytes];

    public PickleBuilder Op(char opcode) => Byte((byte)opcode);

    public PickleBuilder Byte(byte value)
    {
        _bytes.Add(value);
        return this;
    }

    public PickleBuilder Global(string module, string name)
    {
        Op('c');
        _bytes.AddRange(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));
        return this;
    }

    public PickleBuilder String(string text)
    {
        var utf8 = Encoding.UTF8.GetBytes(text);
        Op('X');
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
        _bytes.AddRange(length.ToArray());
        _bytes.AddRange(utf8);
        return this;
    }

    public PickleBuilder Int(int value)
    {
        Op('J');
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        _bytes.AddRange(bytes.ToArray());
        return this;
    }

    public PickleBuilder Ints(params int[] values)
    {
        Op('(');
        foreach (int value in values) Int(value);
        return Op('t');
    }

    /// <summary>collections.OrderedDict() as torch.save writes it: GLOBAL, empty args, REDUCE.</summary>
    public PickleBuilder EmptyOrderedDict() => Global("collections", "OrderedDict").Op(')').Op('R');

    /// <summary>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).</summary>
    public PickleBuilder Tensor(string storageType, string key, int numel, int offset, int[] size, int[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Op('(');
        Op('(').String("storage").Global("torch", storageType).String(key).String("cpu").Int(numel).Op('t').Op('Q');
        Int(offset).Ints(size).Ints(stride).Byte(0x89).EmptyOrderedDict();
        return Op('t').Op('R');
    }

    /// <summary>A whole state dict: OrderedDict, MARK, (name, value) pairs written by <paramref name="entries"/>, SETITEMS, STOP.</summary>
    public static byte[] StateDict(Action<PickleBuilder> entries)
    {
        var pickle = new PickleBuilder().EmptyOrderedDict().Op('(');
        entries(pickle);
        return pickle.Op('u').Op('.').ToArray();
    }

    /// <summary>{"w": float32 [2, 3] over storage "0" (6 elements)}: the well-formed base the hostile cases alter.</summary>
    public static byte[] OneTensor(string key = "0", int numel = 6, int offset = 0, int[]? size = null, int[]? stride = null) =>
        StateDict(p => p.String("w").Tensor("FloatStorage", key, numel, offset, size ?? [2, 3], stride ?? [3, 1]));
}

/// <summary>Writes a torch.save-style zip: archive/data.pkl, archive/data/KEY storages, archive/version.</summary>
internal static class TorchArchiveBuilder
{
    public static readonly float[] Values = [1.5f, -2f, 3.25f, 4f, -5.5f, 6f];

    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }

    /// <param name="storages">key → raw bytes; by default storage "0" holds <see cref="Values"/>.</param>
    /// <param name="compressStorages">Deflate the storage entries, as a re-zipping tool would.</param>
    public static void Write(string path, byte[] pickle, Dictionary<string, byte[]>? storages = null, bool compressStorages = false)
    {
        storages ??= new() { ["0"] = Floats(Values) };
        using var stream = File.Create(path);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create);
        void Add(string name, byte[] data, CompressionLevel level)
        {
            using var entry = zip.CreateEntry(name, level).Open();
            entry.Write(data);
        }
        Add("archive/data.pkl", pickle, CompressionLevel.NoCompression);
        foreach (var (key, data) in storages)
            Add($"archive/data/{key}", data, compressStorages ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
        Add("archive/version", "3\n"u8.ToArray(), CompressionLevel.NoCompression);
    }
}
