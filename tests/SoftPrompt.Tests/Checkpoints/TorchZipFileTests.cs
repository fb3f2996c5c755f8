using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Checkpoints;

/// <summary>torch.save files written by real PyTorch (fixtures/torch, tools/reference/make_bin_checkpoint.py) against their safetensors twin.</summary>
public sealed unsafe class TorchZipFileTests : CheckpointTestDirectory
{
    internal static string Fixtures => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "torch");
    private static string BinFile => Path.Combine(Fixtures, "t5-bin", CheckpointDirectory.TorchFileName);
    private static string Twin => Path.Combine(Fixtures, "t5-safetensors", CheckpointDirectory.SingleFileName);

    [Test]
    public void EveryTensorHasTheTwinsNameDtypeShapeAndBytes()
    {
        using var bin = TorchZipFile.Open(BinFile);
        using var twin = SafeTensorFile.Open(Twin);
        Assert.That(bin.TensorNames, Is.EquivalentTo(twin.TensorNames));
        var dtypes = new HashSet<SafeTensorDType>();
        foreach (var expected in twin.Tensors)
        {
            var actual = bin.GetInfo(expected.Name);
            Assert.That((actual.DType, actual.ShapeText), Is.EqualTo((expected.DType, expected.ShapeText)), expected.Name);
            Assert.That(bin.GetBytes(expected.Name).SequenceEqual(twin.GetBytes(expected.Name)), Is.True, $"bytes of {expected.Name}");
            dtypes.Add(actual.DType);
        }
        Assert.That(dtypes, Is.EquivalentTo(new[] { SafeTensorDType.F32, SafeTensorDType.F16, SafeTensorDType.BF16, SafeTensorDType.F64 }));
    }

    [Test]
    public void TiedNamesShareOneStorageInPlace()
    {
        using var bin = TorchZipFile.Open(BinFile);
        byte* shared = bin.GetPointer("shared.weight");
        Assert.That((nint)bin.GetPointer("encoder.embed_tokens.weight"), Is.EqualTo((nint)shared));
        Assert.That((nint)bin.GetPointer("decoder.embed_tokens.weight"), Is.EqualTo((nint)shared));
        Assert.That(bin.GetInfo("shared.weight").DType, Is.EqualTo(SafeTensorDType.BF16));
    }

    [Test]
    public void FusedSlicesStartAtTheirStorageOffsets()
    {
        using var bin = TorchZipFile.Open(BinFile);
        const string prefix = "encoder.block.0.layer.0.SelfAttention.";
        long q = bin.GetInfo(prefix + "q.weight").Begin, k = bin.GetInfo(prefix + "k.weight").Begin, v = bin.GetInfo(prefix + "v.weight").Begin;
        Assert.That((k - q, v - q), Is.EqualTo((128L * 4, 256L * 4)), "storage offsets 128 and 256 float32 elements into one fused storage");
        using var twin = SafeTensorFile.Open(Twin);
        Assert.That(bin.Read<float>(prefix + "v.weight"), Is.EqualTo(twin.Read<float>(prefix + "v.weight")));
    }

    [Test]
    public void ReadsConvertLikeSafetensors()
    {
        using var bin = TorchZipFile.Open(BinFile);
        using var twin = SafeTensorFile.Open(Twin);
        foreach (string name in new[] { "shared.weight", "lm_head.weight", "decoder.final_layer_norm.weight" })
        {
            Assert.That(bin.Read<float>(name), Is.EqualTo(twin.Read<float>(name)), name);
            Assert.That(bin.Read<double>(name), Is.EqualTo(twin.Read<double>(name)), name);
        }
    }

    [Test]
    public void LegacyRawPickleIsRefusedWithAResaveRecipe()
    {
        var error = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(Path.Combine(Fixtures, "legacy.bin")).Dispose())!;
        Assert.That(error.Message, Does.Contain("legacy.bin").And.Contain("legacy PyTorch checkpoint").And.Contain("torch >= 1.6").And.Contain("safetensors"));
    }

    [Test]
    public void NonContiguousViewIsRefused()
    {
        var error = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(Path.Combine(Fixtures, "noncontiguous.bin")).Dispose())!;
        Assert.That(error.Message, Does.Contain("'w'").And.Contain("non-contiguous").And.Contain("stride [1, 3]").And.Contain(".contiguous()"));
    }

    [Test]
    public void TruncatedDownloadIsRefused()
    {
        var bytes = File.ReadAllBytes(BinFile);
        string path = WriteRaw("pytorch_model.bin", bytes[..(bytes.Length - 200)]);
        var error = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("corrupt zip archive").And.Contain("re-download"));
    }

    [Test]
    public void CutInsideTheCentralDirectoryIsRefused()
    {
        // Keep the end record but point it past a shortened file: every offset must be checked against the mapping.
        var bytes = File.ReadAllBytes(BinFile);
        var tail = bytes[^22..];
        var cut = bytes[..(bytes.Length / 2)].Concat(tail).ToArray();
        string path = WriteRaw("pytorch_model.bin", cut);
        var error = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(error.Message, Does.Contain("corrupt zip archive").And.Contain("central directory"));
    }

    [Test]
    public void NotAZipIsRefused()
    {
        string path = WriteRaw("pytorch_model.bin", "hello world"u8.ToArray());
        var error = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(error.Message, Does.Contain("not a PyTorch checkpoint").And.Contain("'PK'"));
    }
}
