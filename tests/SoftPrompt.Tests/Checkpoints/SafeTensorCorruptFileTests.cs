using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Checkpoints;

/// <summary>Each corrupt file is built byte by byte; the error must name the file, the tensor and the problem.</summary>
public sealed class SafeTensorCorruptFileTests : CheckpointTestDirectory
{
    private const string Good = "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]";

    private string OpenFails(byte[] bytes, params string[] fragments)
    {
        string path = WriteRaw("bad.safetensors", bytes);
        var error = Assert.Throws<CheckpointException>(() => SafeTensorFile.Open(path).Dispose())!;
        Assert.That(error.Message, Does.Contain("bad.safetensors"));
        foreach (var fragment in fragments) Assert.That(error.Message, Does.Contain(fragment));
        return error.Message;
    }

    private string HeaderFails(string header, int dataBytes, params string[] fragments) => OpenFails(RawFile(header, dataBytes), fragments);

    [Test]
    public void EmptyFile() => OpenFails([], "0 bytes", "too short");

    [Test]
    public void FileShorterThanTheLengthField() => OpenFails([1, 0, 0, 0, 0], "5 bytes", "too short");

    [Test]
    public void HeaderLengthBeyondTheFile()
    {
        var bytes = RawFile("{}", 4);
        bytes[0] = 0xE8; bytes[1] = 0x03; // claims 1000 header bytes
        OpenFails(bytes, "header length 1000", "past the end of the file");
    }

    [Test]
    public void PyTorchZipIsRecognised() => OpenFails("PK\u0003\u0004aaaaaaaaaaaa"u8.ToArray(), "PyTorch");

    [Test]
    public void MalformedJson() => HeaderFails("{\"w\": {\"dtype\": ", 0, "not valid JSON");

    [Test]
    public void HeaderThatIsNotAnObject() => HeaderFails("[1, 2]", 0, "not an object");

    [Test]
    public void DuplicateTensorNames() => HeaderFails($"{{\"w\":{{{Good}}},\"w\":{{{Good}}}}}", 8, "'w'", "twice");

    [Test]
    public void EntryThatIsNotAnObject() => HeaderFails("{\"w\": 3}", 0, "tensor 'w'", "must be an object");

    [Test]
    public void MissingDType() => HeaderFails("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "no 'dtype'");

    [Test]
    public void DTypeOfTheWrongType() => HeaderFails("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "'dtype' must be a JSON String");

    [Test]
    public void ShapeOfTheWrongType() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "'shape' must be a JSON Array");

    [Test]
    public void FractionalDimension() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "integers", "1.5");

    [Test]
    public void DataOffsetsOfTheWrongArity() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, "tensor 'w'", "[begin, end]");

    [Test]
    public void DataOffsetsOfTheWrongType() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}", 8, "tensor 'w'", "non-negative integers");

    [Test]
    public void UnknownDType() => HeaderFails("{\"w\":{\"dtype\":\"F42\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "unknown dtype 'F42'", "BF16");

    [Test]
    public void DTypeNamesAreCaseSensitive() => HeaderFails("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'f32'");

    [Test]
    public void DataOffsetsPastTheData() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "tensor 'w'", "[0, 16]", "past the end of the data (8 bytes");

    [Test]
    public void BeginAfterEnd() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "tensor 'w'", "[8, 4]", "begin after");

    [Test]
    public void NegativeOffset() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, "tensor 'w'", "non-negative");

    [Test]
    public void OverlappingTensors() => HeaderFails(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
        12, "'a' [0, 8]", "'b' [4, 12]", "overlap");

    [Test]
    public void ShapeDisagreesWithByteLength() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "[3] of F32 needs 12 bytes", "hold 8");

    [Test]
    public void NegativeDimension() => HeaderFails("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "negative dimension");

    [Test]
    public void ShapeThatOverflows() => HeaderFails(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "overflows");

    [Test]
    public void MetadataValuesMustBeStrings() => HeaderFails("{\"__metadata__\":{\"step\":3}}", 0, "'__metadata__'", "'step'", "must be a string");

    [Test]
    public void MetadataMustBeAnObject() => HeaderFails("{\"__metadata__\":[\"x\"]}", 0, "'__metadata__'", "must be an object");

    [Test]
    public void MissingTensorNamesTheNearestPresent()
    {
        string path = WriteRaw("ok.safetensors", RawFile(
            "{\"h.0.attn.c_attn.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            + "\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
        using var file = SafeTensorFile.Open(path);
        var error = Assert.Throws<CheckpointException>(() => file.GetInfo("h.0.attn.c_atn.weight"))!;
        Assert.That(error.Message, Does.Contain("ok.safetensors").And.Contain("no tensor named 'h.0.attn.c_atn.weight'")
            .And.Contain("nearest names present: 'h.0.attn.c_attn.weight'"));
    }

    [Test]
    public void MissingFile()
    {
        var error = Assert.Throws<CheckpointException>(() => SafeTensorFile.Open(PathOf("absent.safetensors")))!;
        Assert.That(error.Message, Does.Contain("absent.safetensors").And.Contain("cannot open"));
    }

    [Test]
    public void GapsBetweenTensorsAreTolerated()
    {
        string path = WriteRaw("gap.safetensors", RawFile(
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}", 6));
        using var file = SafeTensorFile.Open(path);
        Assert.That(file.GetBytes("b").ToArray(), Is.EqualTo(new byte[] { 4, 5 }));
    }
}
