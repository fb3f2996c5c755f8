using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tests.Fuzz;

/// <summary>
/// Each input under tests/SoftPrompt.Fuzz/corpus/TARGET/crashes/ once escaped its loader with a framework exception;
/// replayed through the same entry point it now fails with the loader's one-line error naming the file and the fault.
/// </summary>
public sealed class FuzzCrashRegressionTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("softprompt-fuzz-crash-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    /// <summary>The committed crash input, copied to where the loader expects it.</summary>
    private string Input(string target, string name, string as_)
    {
        string path = Path.Combine(_dir, as_);
        File.Copy(Path.Combine(FuzzCorpusTests.CorpusDir, target, "crashes", name), path);
        return path;
    }

    private static string OneLine(Exception e, string path)
    {
        Assert.That(e.Message, Does.StartWith(path + ":"));
        Assert.That(e.Message, Does.Not.Contain('\n'));
        return e.Message;
    }

    // torch-zip: sizes from data.pkl multiplied unchecked (OverflowException) or placed a tensor outside its storage.

    [Test]
    public void TorchStorageElementCountOverflowingBytes()
    {
        string path = Input("torch-zip", "review-numel-overflow", "pytorch_model.bin");
        var e = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(OneLine(e, path), Does.Contain("entry 'archive/data/0' holds 8 bytes but its storage declares 4611686018427387904 F32 elements"));
    }

    [Test]
    public void TorchTensorSizeOverflowingElementCount()
    {
        string path = Input("torch-zip", "review-shape-overflow", "pytorch_model.bin");
        var e = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(OneLine(e, path), Does.Contain("tensor 'w' has size [1099511627776, 1099511627776], more elements than storage '0' holds (2)"));
    }

    [Test]
    public void TorchEmptyTensorOffsetPastItsStorage()
    {
        string path = Input("torch-zip", "review-offset-overflow", "pytorch_model.bin");
        var e = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(OneLine(e, path), Does.Contain("tensor 'w' starts at element 4611686018427387904 of storage '0', which holds 2"));
    }

    [Test]
    public void TorchStorageOffsetInsideAHugeDeclaredStorage()
    {
        string path = Input("torch-zip", "review-offset-huge", "pytorch_model.bin");
        var e = Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!;
        Assert.That(OneLine(e, path), Does.Contain("holds 8 bytes but its storage declares 2305843009213693952 F32 elements"));
    }
}
