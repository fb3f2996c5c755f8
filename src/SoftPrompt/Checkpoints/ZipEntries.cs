using System.Buffers.Binary;
using System.Text;

namespace SoftPrompt.Checkpoints;

/// <summary>One member of a zip archive: where its bytes start in the file and how they are stored.</summary>
internal sealed record ZipEntry(string Name, ushort Method, bool Encrypted, long CompressedSize, long Size, long DataOffset)
{
    public const ushort Stored = 0;

    public string MethodName => Method switch { 0 => "stored", 8 => "deflate", 9 => "deflate64", 12 => "bzip2", 14 => "lzma", 93 => "zstd", _ => $"method {Method}" };
}

/// <summary>
/// Reads a zip archive's central directory (zip64 included: PyTorch checkpoints of large models pass 4 GiB) straight
/// from mapped bytes, and resolves each entry's local header to the offset where its data starts. Nothing is
/// decompressed: callers map stored entries in place. Every bound is checked against the file, so a truncated or
/// crafted archive fails with a <see cref="CheckpointException"/> instead of reading outside the mapping.
/// </summary>
internal static class ZipEntries
{
    private const uint EndOfCentralDirectorySignature = 0x06054b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint LocalHeaderSignature = 0x04034b50;
    private const int EndRecordSize = 22, Zip64LocatorSize = 20, Zip64EndSize = 56, CentralHeaderSize = 46, LocalHeaderSize = 30;

    /// <param name="truncatedFix">Appended to every "corrupt archive" message (what the user should do).</param>
    public static Dictionary<string, ZipEntry> Read(MappedFile file, string truncatedFix)
    {
        var reader = new Reader(file, truncatedFix);
        long end = FindEndRecord(reader);
        long entryCount = reader.U16(end + 10), directorySize = reader.U32(end + 12), directoryOffset = reader.U32(end + 16);
        if (entryCount == 0xFFFF || directorySize == 0xFFFFFFFF || directoryOffset == 0xFFFFFFFF)
            (entryCount, directorySize, directoryOffset) = ReadZip64End(reader, end);
        reader.Require(directoryOffset, directorySize, "the central directory");

        var entries = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        long position = directoryOffset;
        for (long i = 0; i < entryCount; i++)
        {
            reader.Require(position, CentralHeaderSize, "a central directory entry");
            if (reader.U32(position) != CentralHeaderSignature)
                throw reader.Corrupt($"central directory entry {i} at byte {position} has no entry signature");
            ushort flags = reader.U16(position + 8), method = reader.U16(position + 10);
            long compressed = reader.U32(position + 20), size = reader.U32(position + 24);
            int nameLength = reader.U16(position + 28), extraLength = reader.U16(position + 30), commentLength = reader.U16(position + 32);
            long localOffset = reader.U32(position + 42);
            reader.Require(position + CentralHeaderSize, nameLength + extraLength + commentLength, "a central directory entry's name");
            string name = Encoding.UTF8.GetString(reader.Bytes(position + CentralHeaderSize, nameLength));
            ApplyZip64Extra(reader, position + CentralHeaderSize + nameLength, extraLength, ref size, ref compressed, ref localOffset);
            long dataOffset = DataOffset(reader, name, localOffset);
            reader.Require(dataOffset, compressed, $"entry '{name}' ({compressed} bytes)");
            if (!entries.TryAdd(name, new ZipEntry(name, method, (flags & 1) != 0, compressed, size, dataOffset)))
                throw reader.Corrupt($"entry '{name}' appears twice");
            position += CentralHeaderSize + nameLength + extraLength + commentLength;
        }
        return entries;
    }

    /// <summary>The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.</summary>
    private static long FindEndRecord(Reader reader)
    {
        long last = reader.Length - EndRecordSize;
        for (long at = last; at >= 0 && at >= last - ushort.MaxValue; at--)
            if (reader.U32(at) == EndOfCentralDirectorySignature) return at;
        throw reader.Corrupt("no end-of-central-directory record (the archive is truncated or not a zip file)");
    }

    private static (long Entries, long Size, long Offset) ReadZip64End(Reader reader, long end)
    {
        long locator = end - Zip64LocatorSize;
        if (locator < 0 || reader.U32(locator) != Zip64LocatorSignature)
            throw reader.Corrupt("the end record points to a zip64 directory but there is no zip64 locator");
        long record = reader.I64(locator + 8);
        reader.Require(record, Zip64EndSize, "the zip64 end record");
        if (reader.U32(record) != Zip64EndSignature) throw reader.Corrupt($"no zip64 end record at byte {record}");
        return (reader.I64(record + 32), reader.I64(record + 40), reader.I64(record + 48));
    }

    /// <summary>Zip64 extra field (id 1): 64-bit values for exactly those 32-bit fields that hold 0xFFFFFFFF, in this order.</summary>
    private static void ApplyZip64Extra(Reader reader, long at, int length, ref long size, ref long compressed, ref long localOffset)
    {
        long end = at + length;
        while (at + 4 <= end)
        {
            ushort id = reader.U16(at), fieldLength = reader.U16(at + 2);
            long field = at + 4, fieldEnd = field + fieldLength;
            if (fieldEnd > end) throw reader.Corrupt("an extra field runs past its entry");
            if (id == 1)
            {
                long Next(ref long cursor)
                {
                    if (cursor + 8 > fieldEnd) throw reader.Corrupt("the zip64 extra field is too short");
                    long value = reader.I64(cursor);
                    cursor += 8;
                    return value;
                }
                if (size == 0xFFFFFFFF) size = Next(ref field);
                if (compressed == 0xFFFFFFFF) compressed = Next(ref field);
                if (localOffset == 0xFFFFFFFF) localOffset = Next(ref field);
            }
            at = fieldEnd;
        }
    }

    /// <summary>Data follows the local header, whose name and extra field (PyTorch pads it to align data to 64 bytes) may differ in length from the central copy.</summary>
    private static long DataOffset(Reader reader, string name, long localOffset)
    {
        reader.Require(localOffset, LocalHeaderSize, $"the local header of '{name}'");
        if (reader.U32(localOffset) != LocalHeaderSignature)
            throw reader.Corrupt($"entry '{name}' points to byte {localOffset}, which is not a local header");
        return localOffset + LocalHeaderSize + reader.U16(localOffset + 26) + reader.U16(localOffset + 28);
    }

    /// <summary>Bounds-checked little-endian reads of the mapping.</summary>
    private readonly struct Reader(MappedFile file, string fix)
    {
        public long Length => file.Length;

        public void Require(long offset, long count, string what)
        {
            if (offset < 0 || count < 0 || offset > file.Length - count)
                throw Corrupt($"{what} at byte {offset} runs past the end of the file ({file.Length} bytes)");
        }

        public ReadOnlySpan<byte> Bytes(long offset, int count)
        {
            Require(offset, count, "a field");
            return file.Span(offset, count);
        }

        public ushort U16(long offset) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(offset, 2));
        public uint U32(long offset) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(offset, 4));

        public long I64(long offset)
        {
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(Bytes(offset, 8));
            return value > long.MaxValue ? throw Corrupt($"a 64-bit size at byte {offset} is out of range") : (long)value;
        }

        public CheckpointException Corrupt(string what) => new($"{file.Path}: corrupt zip archive: {what}; {fix}.");
    }
}
