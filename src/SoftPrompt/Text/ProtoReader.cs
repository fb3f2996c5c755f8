namespace SoftPrompt.Text;

/// <summary>Protobuf wire-format reading: tags, varints, length-delimited fields; a malformed stream is a FormatException.</summary>
internal sealed class ProtoReader(byte[] data)
{
    public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;
    private int position;

    public bool Next(out int field, out int wire)
    {
        field = wire = 0;
        if (position == data.Length) return false;
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wire = (int)(tag & 7);
        if (field == 0) throw new FormatException($"field number 0 at byte {position}");
        return true;
    }

    /// <summary>int32 fields hold negative values as 64-bit two's complement varints; the low 32 bits are the value.</summary>
    public int Int32() => unchecked((int)ReadVarint());

    /// <summary>A float field: four little-endian bytes (wire type Fixed32).</summary>
    public float Float()
    {
        Advance(4);
        return System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(position - 4, 4));
    }

    public ReadOnlySpan<byte> Bytes()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(data.Length - position)) throw new FormatException($"a field of {length} bytes runs past the end at byte {position}");
        var span = data.AsSpan(position, (int)length);
        position += (int)length;
        return span;
    }

    public void Skip(int wire)
    {
        switch (wire)
        {
            case Varint: ReadVarint(); break;
            case LengthDelimited: Bytes(); break;
            case Fixed64: Advance(8); break;
            case Fixed32: Advance(4); break;
            default: throw new FormatException($"wire type {wire} at byte {position}");
        }
    }

    private void Advance(int count)
    {
        if (count > data.Length - position) throw new FormatException($"truncated at byte {position}");
        position += count;
    }

    private ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if (position == data.Length) throw new FormatException($"truncated varint at byte {position}");
            byte b = data[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new FormatException($"varint longer than 10 bytes at byte {position}");
    }
}
