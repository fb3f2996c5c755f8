using SoftPrompt.Checkpoints;
using SoftPrompt.Tuning;

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

    // prompt / peft: empty prompts loaded, and a dimension past int.MaxValue was cast (2^40 → width 0, 2^31+1 → -2^31+1 rows).

    [TestCase("review-zero-width", "[5, 0]")]
    [TestCase("review-zero-len", "[0, 3]")]
    [TestCase("review-huge-width", "[0, 1099511627776]")]
    public void PromptFileWithoutVectorsOrChannels(string input, string shape)
    {
        string path = Input("prompt", input, "prompt.safetensors");
        var e = Assert.Throws<CheckpointException>(() => PromptFile.Load(path))!;
        Assert.That(OneLine(e, path), Does.Contain($"tensor 'prompt_embeddings' has shape {shape}; a prompt [P, d] needs at least one vector and one channel"));
    }

    [TestCase("review-zero", "[0, 3]")]
    [TestCase("review-huge-width", "[0, 8589934592]")]
    [TestCase("review-odd-rows", "[2147483649, 0]")]
    public void PeftAdapterWithoutVectorsOrChannels(string input, string shape)
    {
        // The input is adapter_config.json, a NUL byte, then adapter_model.safetensors (the fuzz target's layout).
        byte[] data = File.ReadAllBytes(Path.Combine(FuzzCorpusTests.CorpusDir, "peft", "crashes", input));
        int nul = Array.IndexOf(data, (byte)0);
        File.WriteAllBytes(Path.Combine(_dir, "adapter_config.json"), data[..nul]);
        string weights = Path.Combine(_dir, "adapter_model.safetensors");
        File.WriteAllBytes(weights, data[(nul + 1)..]);
        var e = Assert.Throws<CheckpointException>(() => PeftAdapter.Import(_dir))!;
        Assert.That(OneLine(e, weights), Does.Contain($"has shape {shape}; a prompt [num_virtual_tokens, token_dim] needs at least one vector and one channel"));
    }
}
