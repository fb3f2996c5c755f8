namespace SoftPrompt.Text;

/// <summary>Protobuf wire-format writing for the few fields the SentencePiece loader patches.</summary>
internal static class ProtoWriter
{
    public static void Int(List<byte> output, int field, long value)
    {
        Varint(output, (ulong)field << 3 | ProtoReader.Varint);
        Varint(output, unchecked((ulong)value));
    }

    public static void String(List<byte> output, int field, string value) => Bytes(output, field, System.Text.Encoding.UTF8.GetBytes(value));

    public static void Bytes(List<byte> output, int field, byte[] value)
    {
        Varint(output, (ulong)field << 3 | ProtoReader.LengthDelimited);
        Varint(output, (ulong)value.Length);
        output.AddRange(value);
    }

    private static void Varint(List<byte> output, ulong value)
    {
        while (value >= 0x80) { output.Add((byte)(value | 0x80)); value >>= 7; }
        output.Add((byte)value);
    }
}
