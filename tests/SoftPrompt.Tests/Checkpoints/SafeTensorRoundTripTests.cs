using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Checkpoints;

public sealed class SafeTensorRoundTripTests : CheckpointTestDirectory
{
    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    private string Save(SafeTensorWriter writer)
    {
        string path = PathOf("t.safetensors");
        writer.Save(path);
        return path;
    }

    [Test]
    public void F32RoundTripsBitExactly()
    {
        float[] data = [1.5f, -2f, float.MaxValue, float.Epsilon, float.NegativeInfinity, -0f];
        var writer = new SafeTensorWriter();
        writer.Add("w", data, [2, 3]);
        using var file = SafeTensorFile.Open(Save(writer));
        var info = file.GetInfo("w");
        Assert.That(info.DType, Is.EqualTo(SafeTensorDType.F32));
        Assert.That(info.Shape, Is.EqualTo(new long[] { 2, 3 }));
        Assert.That(info.ByteLength, Is.EqualTo(24));
        Assert.That(file.GetBytes("w").ToArray(), Is.EqualTo(MemoryMarshal.AsBytes(data.AsSpan()).ToArray()));
        var back = new float[6];
        file.ReadAsFloat("w", back);
        Assert.That(back, Is.EqualTo(data));
        var wide = new double[6];
        file.ReadAsDouble("w", wide);
        Assert.That(wide, Is.EqualTo(data.Select(x => (double)x).ToArray()));
    }

    [Test]
    public void F64RoundTripsAndNarrowsToFloat()
    {
        double[] data = [Math.PI, -1e300, 1e-310, 0.1];
        var writer = new SafeTensorWriter();
        writer.Add("d", data, [4]);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.Read<double>("d"), Is.EqualTo(data));
        Assert.That(file.Read<float>("d"), Is.EqualTo(new[] { (float)Math.PI, float.NegativeInfinity, 0f, 0.1f }));
    }

    [Test]
    public void IntegersRoundTripAndWidenOrNarrowSafely()
    {
        long[] ids = [0, 50256, -1, (long)int.MaxValue + 1];
        int[] small = [7, -7, int.MinValue];
        var writer = new SafeTensorWriter();
        writer.Add("ids", ids, [2, 2]);
        writer.Add("small", small, [3]);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.GetInfo("ids").DType, Is.EqualTo(SafeTensorDType.I64));
        Assert.That(file.GetInfo("small").DType, Is.EqualTo(SafeTensorDType.I32));
        var longs = new long[4];
        file.ReadInt64("ids", longs);
        Assert.That(longs, Is.EqualTo(ids));
        var ints = new int[3];
        file.ReadInt32("small", ints);
        Assert.That(ints, Is.EqualTo(small));
        var widened = new long[3];
        file.ReadInt64("small", widened);
        Assert.That(widened, Is.EqualTo(new long[] { 7, -7, int.MinValue }));
        var error = Assert.Throws<CheckpointException>(() => file.ReadInt32("ids", new int[4]))!;
        Assert.That(error.Message, Does.Contain("'ids'").And.Contain("element 3").And.Contain("ReadInt64"));
        Assert.That(Assert.Throws<CheckpointException>(() => file.ReadAsFloat("ids", new float[4]))!.Message,
            Does.Contain("stored as I64"));
    }

    [Test]
    public void F16StoresHandComputedBitPatterns()
    {
        // 0.1 = 1.6·2⁻⁴ → exponent 11, mantissa round(0.6·1024)=614=0x266; 65520 is the tie above 65504 → inf.
        float[] data = [1f, -2f, 65504f, 0.1f, 65520f, 1e-8f];
        ushort[] expectedBits = [0x3C00, 0xC000, 0x7BFF, 0x2E66, 0x7C00, 0x0000];
        var writer = new SafeTensorWriter();
        writer.Add("h", data, [6], SafeTensorDType.F16);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.GetInfo("h").DType, Is.EqualTo(SafeTensorDType.F16));
        Assert.That(MemoryMarshal.Cast<byte, ushort>(file.GetBytes("h")).ToArray(), Is.EqualTo(expectedBits));
        Assert.That(file.Read<float>("h"), Is.EqualTo(new[] { 1f, -2f, 65504f, 0.0999755859375f, float.PositiveInfinity, 0f }));
        Assert.That(file.Read<double>("h"), Is.EqualTo(new[] { 1d, -2d, 65504d, 0.0999755859375d, double.PositiveInfinity, 0d }));
    }

    [Test]
    public void BF16RoundsToNearestEvenWithHandComputedBitPatterns()
    {
        float[] data =
        [
            1f, -2.5f,
            F(0x40490FDB),   // π: low half 0x0FDB < 0x8000 → truncates to 0x4049
            F(0x3F808000),   // exact tie, 0x3F80 even → stays
            F(0x3F818000),   // exact tie, 0x3F81 odd → 0x3F82
            F(0x3F80C000),   // above the tie → 0x3F81
            F(0x7F800001),   // signalling NaN → quiet NaN
            float.NegativeInfinity,
        ];
        ushort[] expectedBits = [0x3F80, 0xC020, 0x4049, 0x3F80, 0x3F82, 0x3F81, 0x7FC0, 0xFF80];
        var writer = new SafeTensorWriter();
        writer.Add("b", data, [8], SafeTensorDType.BF16);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(MemoryMarshal.Cast<byte, ushort>(file.GetBytes("b")).ToArray(), Is.EqualTo(expectedBits));
        var back = file.Read<float>("b");
        Assert.That(back.Select(BitConverter.SingleToUInt32Bits).ToArray(),
            Is.EqualTo(expectedBits.Select(b => (uint)b << 16).ToArray()));
        Assert.That(back[2], Is.EqualTo(3.140625f));
        Assert.That(file.Read<double>("b")[4], Is.EqualTo(1.015625d));
    }

    [Test]
    public void BF16FromDoubleRoundsOnce()
    {
        // 1 + 2⁻⁸ + 2⁻³⁰ sits just above a bf16 tie; rounding to float first lands exactly on the tie
        // and would round down to even (0x3F80). Correct single rounding goes up.
        var writer = new SafeTensorWriter();
        writer.Add("b", [1 + Math.Pow(2, -8) + Math.Pow(2, -30), -(1 + Math.Pow(2, -8))], [2], SafeTensorDType.BF16);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(MemoryMarshal.Cast<byte, ushort>(file.GetBytes("b")).ToArray(), Is.EqualTo(new ushort[] { 0x3F81, 0xBF80 }));
    }

    [Test]
    public void F16AndBF16ConversionsCoverAVectorWidthAndATail()
    {
        var data = Enumerable.Range(0, 301).Select(i => (i - 150) * 0.37f).ToArray();
        var writer = new SafeTensorWriter();
        writer.Add("b", data, [301], SafeTensorDType.BF16);
        writer.Add("h", data, [301], SafeTensorDType.F16);
        using var file = SafeTensorFile.Open(Save(writer));
        var bf16 = file.Read<float>("b");
        var f16 = file.Read<float>("h");
        for (int i = 0; i < data.Length; i++)
        {
            Assert.That(bf16[i], Is.EqualTo(F((uint)(BitConverter.SingleToUInt32Bits(data[i]) + 0x7FFF + ((BitConverter.SingleToUInt32Bits(data[i]) >> 16) & 1)) & 0xFFFF0000)), $"bf16 [{i}]");
            Assert.That(f16[i], Is.EqualTo((float)(Half)data[i]), $"f16 [{i}]");
        }
    }

    [Test]
    public void MetadataRoundTrips()
    {
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt";
        writer.Metadata["note"] = "ünïcode \"quoted\" \\ <tag>";
        writer.Add("x", [1f], [1]);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.Metadata, Is.EquivalentTo(writer.Metadata));
    }

    [Test]
    public void ScalarsAndEmptyTensorsRoundTrip()
    {
        var writer = new SafeTensorWriter();
        writer.Add("scalar", [42.5f], []);
        writer.Add("empty", ReadOnlySpan<float>.Empty, [0, 3]);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.GetInfo("scalar").Shape, Is.Empty);
        Assert.That(file.GetInfo("scalar").ShapeText, Is.EqualTo("[]"));
        Assert.That(file.Read<float>("scalar"), Is.EqualTo(new[] { 42.5f }));
        Assert.That(file.GetInfo("empty").ElementCount, Is.Zero);
        Assert.That(file.Read<float>("empty"), Is.Empty);
    }

    [Test]
    public void LayoutMatchesTheReferenceLibraryByteForByte()
    {
        // What safetensors' save_file writes for {"b": int32 [1], "a": float64 [1]} with metadata format=pt:
        // metadata first, data largest element first, then by name, header padded with spaces to 8 bytes.
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt";
        writer.Add("b", [7], [1]);
        writer.Add("a", [2.0], [1]);
        var stream = new MemoryStream();
        writer.WriteTo(stream);
        const string json = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
            + "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
        string padded = json.PadRight((json.Length + 7) / 8 * 8);
        var expected = new byte[8 + padded.Length + 12];
        BinaryPrimitives.WriteUInt64LittleEndian(expected, (ulong)padded.Length);
        Encoding.ASCII.GetBytes(padded).CopyTo(expected, 8);
        BinaryPrimitives.WriteDoubleLittleEndian(expected.AsSpan(8 + padded.Length), 2.0);
        BinaryPrimitives.WriteInt32LittleEndian(expected.AsSpan(16 + padded.Length), 7);
        Assert.That(stream.ToArray(), Is.EqualTo(expected));
    }

    [Test]
    public void EveryTensorStartsNaturallyAligned()
    {
        var writer = new SafeTensorWriter();
        writer.Add("z_half", [1f, 2f, 3f], [3], SafeTensorDType.F16);
        writer.Add("a_float", [1f], [1]);
        writer.Add("m_double", [1.0], [1]);
        writer.AddRaw("b_bytes", SafeTensorDType.U8, [3], [1, 2, 3]);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.Tensors.Select(t => t.Name), Is.EqualTo(new[] { "m_double", "a_float", "z_half", "b_bytes" }));
        long dataStart = new FileInfo(file.Path).Length - file.Tensors[^1].End;
        Assert.That(dataStart % 8, Is.Zero);
        foreach (var tensor in file.Tensors)
            Assert.That((dataStart + tensor.Begin) % tensor.DType.ElementSize, Is.Zero, tensor.Name);
    }

    [Test]
    public void OtherDTypesOpenAndReportButDoNotConvert()
    {
        var writer = new SafeTensorWriter();
        writer.AddRaw("mask", SafeTensorDType.BOOL, [2, 2], [1, 0, 0, 1]);
        writer.AddRaw("q", SafeTensorDType.I8, [2], [0xFF, 0x01]);
        using var file = SafeTensorFile.Open(Save(writer));
        Assert.That(file.GetInfo("mask").DType, Is.EqualTo(SafeTensorDType.BOOL));
        Assert.That(file.GetBytes("mask").ToArray(), Is.EqualTo(new byte[] { 1, 0, 0, 1 }));
        var error = Assert.Throws<CheckpointException>(() => file.ReadAsFloat("q", new float[2]))!;
        Assert.That(error.Message, Does.Contain("'q'").And.Contain("stored as I8").And.Contain("t.safetensors"));
    }

    [Test]
    public unsafe void PointerViewsAddressTheMappedData()
    {
        var writer = new SafeTensorWriter();
        writer.Add("w", [3f, 4f], [2]);
        using var file = SafeTensorFile.Open(Save(writer));
        float* data = (float*)file.GetPointer("w");
        Assert.That(data[1], Is.EqualTo(4f));
    }

    [Test]
    public void DestinationOfTheWrongLengthIsRejected()
    {
        var writer = new SafeTensorWriter();
        writer.Add("w", [1f, 2f, 3f, 4f], [2, 2]);
        using var file = SafeTensorFile.Open(Save(writer));
        var error = Assert.Throws<CheckpointException>(() => file.ReadAsFloat("w", new float[3]))!;
        Assert.That(error.Message, Does.Contain("'w'").And.Contain("[2, 2]").And.Contain("holds 3"));
    }

    [Test]
    public void DisposeReleasesTheMapping()
    {
        var writer = new SafeTensorWriter();
        writer.Add("w", [1f], [1]);
        string path = Save(writer);
        var file = SafeTensorFile.Open(path);
        file.Dispose();
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes("w"));
        File.Delete(path); // nothing keeps the file open
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void WriterRejectsBadArguments()
    {
        var writer = new SafeTensorWriter();
        writer.Add("w", [1f, 2f], [2]);
        Assert.Throws<ArgumentException>(() => writer.Add("w", [1f], [1]));
        Assert.Throws<ArgumentException>(() => writer.Add("__metadata__", [1f], [1]));
        Assert.Throws<ArgumentException>(() => writer.Add("x", [1f, 2f], [3]));
        Assert.Throws<ArgumentException>(() => writer.Add("x", [1f], [-1]));
        Assert.Throws<ArgumentException>(() => writer.Add("x", [1f], [1], SafeTensorDType.I32));
    }
}
