using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Checkpoints;

/// <summary>
/// Hand-built archives a real torch.save never writes: each must be refused with a message naming the file and the
/// offending opcode, global or tensor. The first test proves the builder's well-formed base loads, so every refusal
/// below comes from the one thing its case changes.
/// </summary>
public sealed class TorchHostileArchiveTests : CheckpointTestDirectory
{
    private string Build(byte[] pickle, Dictionary<string, byte[]>? storages = null, bool compress = false, string name = CheckpointDirectory.TorchFileName)
    {
        string path = PathOf(name);
        TorchArchiveBuilder.Write(path, pickle, storages, compress);
        return path;
    }

    private string Refusal(byte[] pickle, Dictionary<string, byte[]>? storages = null, bool compress = false)
    {
        string path = Build(pickle, storages, compress);
        var error = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(error.Message, Does.StartWith(path + ":"));
        return error.Message;
    }

    [Test]
    public void WellFormedBaseLoads()
    {
        using var file = TorchZipFile.Open(Build(PickleBuilder.OneTensor()));
        Assert.That(file.GetInfo("w").ShapeText, Is.EqualTo("[2, 3]"));
        Assert.That(file.Read<float>("w"), Is.EqualTo(TorchArchiveBuilder.Values));
        using var offset = TorchZipFile.Open(Build(PickleBuilder.OneTensor(offset: 2, size: [4], stride: [1]), name: "offset.bin"));
        Assert.That(offset.Read<float>("w"), Is.EqualTo(TorchArchiveBuilder.Values[2..]));
    }

    [Test]
    public void GlobalOsSystemIsRefusedBeforeAnythingRuns() =>
        Assert.That(Refusal(new PickleBuilder().Global("os", "system").String("touch pwned").Byte(0x85).Op('R').Op('.').ToArray()),
            Does.Contain("global 'os.system'").And.Contain("arbitrary code"));

    [Test]
    public void StackGlobalBuiltinsEvalIsRefused() =>
        Assert.That(Refusal(new PickleBuilder().String("builtins").String("eval").Byte(0x93).String("1+1").Byte(0x85).Op('R').Op('.').ToArray()),
            Does.Contain("global 'builtins.eval'"));

    [Test]
    public void ReduceOfAnUnknownCallableIsRefused() =>
        // torch.FloatStorage is an allowed global (as a persistent id's type) but must never be called.
        Assert.That(Refusal(PickleBuilder.StateDict(p => p.String("w").Global("torch", "FloatStorage").Op(')').Op('R'))),
            Does.Contain("REDUCE calls torch.FloatStorage").And.Contain("not a state dict's callable"));

    [Test]
    public void InstOfAClassIsRefused() =>
        Assert.That(Refusal(new PickleBuilder().Op('(').Op('i').ToArray().Concat("os\nsystem\n"u8.ToArray()).ToArray()),
            Does.Contain("opcode INST ('i')"));

    [Test]
    public void BuildOnATensorIsRefused() =>
        Assert.That(Refusal(PickleBuilder.StateDict(p => p.String("w").Tensor("FloatStorage", "0", 6, 0, [6], [1]).Op('}').Op('b'))),
            Does.Contain("BUILD").And.Contain("a tensor"));

    [Test]
    public void MissingStorageEntryIsNamed() =>
        Assert.That(Refusal(PickleBuilder.OneTensor(key: "7")), Does.Contain("tensor 'w'").And.Contain("storage '7'").And.Contain("no entry 'archive/data/7'"));

    [Test]
    public void TensorPastItsStoragesEndIsRefused() =>
        Assert.That(Refusal(PickleBuilder.OneTensor(offset: 1)),
            Does.Contain("tensor 'w'").And.Contain("6 elements from offset 1").And.Contain("runs past the end of storage '0'"));

    [Test]
    public void StorageLongerThanItsEntryIsRefused() =>
        Assert.That(Refusal(PickleBuilder.OneTensor(numel: 600, size: [600], stride: [1])),
            Does.Contain("entry 'archive/data/0' holds 24 bytes but its storage declares 600 F32 elements"));

    [Test]
    public void NonContiguousStridesAreRefused() =>
        Assert.That(Refusal(PickleBuilder.OneTensor(size: [3, 2], stride: [1, 3])), Does.Contain("non-contiguous").And.Contain("stride [1, 3]"));

    [Test]
    public void CompressedStorageIsRefused() =>
        Assert.That(Refusal(PickleBuilder.OneTensor(), compress: true),
            Does.Contain("entry 'archive/data/0' is compressed (deflate)").And.Contain("re-packed by another tool"));

    [Test]
    public void TopLevelThatIsNotADictIsRefused() =>
        Assert.That(Refusal(new PickleBuilder().String("just text").Op('.').ToArray()), Does.Contain("the string 'just text', not a state dict"));

    [Test]
    public void NonTensorValuesAreRefused() =>
        Assert.That(Refusal(PickleBuilder.StateDict(p => p.String("epoch").Int(3))), Does.Contain("entry 'epoch' is the integer 3, not a tensor"));

    [Test]
    public void UnsupportedStorageTypeIsNamed() =>
        Assert.That(Refusal(PickleBuilder.StateDict(p => p.String("w").Tensor("ComplexFloatStorage", "0", 3, 0, [3], [1]))),
            Does.Contain("torch.ComplexFloatStorage has no safetensors dtype"));

    [Test]
    public void TruncatedPickleIsRefused()
    {
        var pickle = PickleBuilder.OneTensor();
        Assert.That(Refusal(pickle[..(pickle.Length - 5)]), Does.Contain("truncated data.pkl"));
    }
}
