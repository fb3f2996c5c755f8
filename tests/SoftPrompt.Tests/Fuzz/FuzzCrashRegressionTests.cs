using SoftPrompt.Checkpoints;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;
using SoftPrompt.Text;
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

    // Every JSON loader: invalid UTF-8 inside a string (afl-*) or an unpaired surrogate escape (review-*) parsed, then
    // reading it threw System.Text.Json's bare InvalidOperationException, which names no file.

    private const string NotUtf8 = "is not valid UTF-8 text";

    [TestCase("afl-0a36d743afa0689f")]
    public void LlamaConfigWithInvalidUtf8(string input)
    {
        string path = Input("config-llama", input, "config.json");
        Assert.That(OneLine(Assert.Throws<CheckpointException>(() => LlamaConfig.Load(path))!, path), Does.Contain(NotUtf8));
    }

    [TestCase("afl-13656fc9a5dbed8a")]
    [TestCase("afl-332035ee3727b7b5")]
    public void T5ConfigWithInvalidUtf8(string input)
    {
        string path = Input("config-t5", input, "config.json");
        Assert.That(OneLine(Assert.Throws<CheckpointException>(() => T5Config.Load(path))!, path), Does.Contain(NotUtf8));
    }

    [Test]
    public void Gpt2ConfigWithALoneSurrogate()
    {
        string path = Input("config-gpt2", "review-lone-surrogate", "config.json");
        Assert.That(OneLine(Assert.Throws<CheckpointException>(() => Gpt2Config.Load(path))!, path), Does.Contain("$.activation_function " + NotUtf8));
    }

    [TestCase("afl-298a8ee1fa618b61", "$.prompt_index.dtype")]
    [TestCase("afl-ec76097eb3fcdfa4", "a property name in $.__metadata__")]
    [TestCase("afl-f0a2932953c01a05", "a property name in $")]
    public void SafetensorsHeaderWithInvalidUtf8(string input, string where)
    {
        string path = Input("safetensors", input, "model.safetensors");
        var e = Assert.Throws<CheckpointException>(() => SafeTensorFile.Open(path).Dispose())!;
        Assert.That(OneLine(e, path), Does.Contain($"the safetensors header is not valid JSON ({where} {NotUtf8}"));
    }

    [TestCase("afl-0e88ffd4f6342c61")]
    [TestCase("afl-4ee0b224d9cf5afd")]
    [TestCase("afl-5210f830b876de21")]
    [TestCase("afl-52b9160b10365209")]
    [TestCase("afl-a9f182e9cc4c4a48")]
    [TestCase("afl-d26eaab93b7c7626")]
    public void PromptFileWithInvalidUtf8(string input)
    {
        string path = Input("prompt", input, "prompt.safetensors");
        Assert.That(OneLine(Assert.Throws<CheckpointException>(() => PromptFile.Load(path))!, path), Does.Contain(NotUtf8));
    }

    [TestCase("afl-05a1654af6d9a44b")]
    [TestCase("afl-39ef30e7ba8802b9")]
    [TestCase("afl-aa2f2090dc869d62")]
    [TestCase("afl-b7a91fb66102d806")]
    [TestCase("afl-eb687aadbec949ff")]
    [TestCase("afl-fe9984c7843274b8")]
    public void PeftAdapterWithInvalidUtf8(string input)
    {
        byte[] data = File.ReadAllBytes(Path.Combine(FuzzCorpusTests.CorpusDir, "peft", "crashes", input));
        int nul = Array.IndexOf(data, (byte)0);
        File.WriteAllBytes(Path.Combine(_dir, "adapter_config.json"), nul < 0 ? data : data[..nul]);
        File.WriteAllBytes(Path.Combine(_dir, "adapter_model.safetensors"), nul < 0 ? [] : data[(nul + 1)..]);
        var e = Assert.Throws<CheckpointException>(() => PeftAdapter.Import(_dir))!;
        Assert.That(e.Message, Does.StartWith(_dir + Path.DirectorySeparatorChar).And.Contain(NotUtf8).And.Not.Contain('\n'));
    }

    [TestCase("afl-36a5cf24af794729")]
    [TestCase("afl-438f1df8337cd2dc")]
    [TestCase("afl-b3f07ba2703e6c73")]
    [TestCase("afl-ccf607793f81315e")]
    public void TokenizerJsonWithInvalidUtf8(string input)
    {
        string path = Input("tokenizer-json", input, "tokenizer.json");
        var e = Assert.Throws<DataException>(() => TokenizerJson.Load(path, SpecialTokenNames.None))!;
        Assert.That(OneLine(e, path), Does.Contain(NotUtf8));
    }

    [Test]
    public void JsonlRowWithALoneSurrogate()
    {
        string path = Input("jsonl", "review-lone-surrogate", "data.jsonl");
        var e = Assert.Throws<DataException>(() => TextTable.Read(path))!;
        Assert.That(e.Message, Does.StartWith(path + ", row 1: not valid JSON ($.label " + NotUtf8).And.Not.Contain('\n'));
    }

    // Multi-line errors: messages quoted what the file held (a JSON token, a pickle string, a zip entry name, the
    // byteorder entry) with its newlines and control bytes; the library's exceptions now escape them.

    [TestCase("safetensors", "326d6cdb395d83a4", "model.safetensors", "the safetensors header is not valid JSON")]
    [TestCase("config-gpt2", "5c956882aa198115", "config.json", "cannot read config.json")]
    [TestCase("config-llama", "96cb7e0ad014176c", "config.json", "cannot read config.json")]
    [TestCase("config-t5", "c3c0e24da6202f05", "config.json", "cannot read config.json")]
    [TestCase("tokenizer-json", "75ab1e36b48522a5", "tokenizer.json", "not valid JSON")]
    [TestCase("torch-zip", "1c558860eac168e2", "pytorch_model.bin", "persistent id the string")]
    [TestCase("torch-zip", "379e9e9d913b4289", "pytorch_model.bin", "corrupt zip archive: the local header of")]
    [TestCase("torch-zip", "5bafe45a8b5f9fc3", "pytorch_model.bin", "corrupt zip archive: entry")]
    [TestCase("torch-zip", "750baf192711d40a", "pytorch_model.bin", "tensors were saved")]
    [TestCase("torch-zip", "bddada1b0902e1c5", "pytorch_model.bin", "REDUCE calls the string")]
    [TestCase("csv", "6ad473143041e8e3", "data.csv", "the header names column \"\\u0010\\n\" twice")]
    public void ErrorQuotingFileContentStaysOnOneLine(string target, string input, string fileName, string expected)
    {
        string path = Input(target, input, fileName);
        Exception e = target switch
        {
            "safetensors" => Assert.Throws<CheckpointException>(() => SafeTensorFile.Open(path).Dispose())!,
            "config-gpt2" => Assert.Throws<CheckpointException>(() => Gpt2Config.Load(path))!,
            "config-llama" => Assert.Throws<CheckpointException>(() => LlamaConfig.Load(path))!,
            "config-t5" => Assert.Throws<CheckpointException>(() => T5Config.Load(path))!,
            "tokenizer-json" => Assert.Throws<DataException>(() => TokenizerJson.Load(path, SpecialTokenNames.None))!,
            "csv" => Assert.Throws<DataException>(() => TextTable.Read(path))!,
            _ => Assert.Throws<CheckpointException>(() => TorchZipFile.Open(path).Dispose())!,
        };
        Assert.That(OneLine(e, path), Does.Contain(expected));
        Assert.That(e.Message.Any(c => char.IsControl(c) && c != '\t'), Is.False, "no control characters");
    }

    [TestCase("1e24bd6625c18422", "persistent id the string")]
    [TestCase("30db05d1844244f2", "the file holds the string")]
    [TestCase("3247a89057edd9f5", "torch._utils._rebuild_tensor_v2 with arguments")]
    public void PickleErrorQuotingItsStringsStaysOnOneLine(string input, string expected)
    {
        string path = Path.Combine(_dir, "pytorch_model.bin");
        byte[] pickle = File.ReadAllBytes(Path.Combine(FuzzCorpusTests.CorpusDir, "pickle", "crashes", input));
        var e = Assert.Throws<CheckpointException>(() => StateDictUnpickler.Read(path, pickle))!;
        Assert.That(OneLine(e, path), Does.Contain(expected));
    }

    [Test]
    public void VocabJsonErrorQuotingItsTokenStaysOnOneLine()
    {
        byte[] data = File.ReadAllBytes(Path.Combine(FuzzCorpusTests.CorpusDir, "vocab-merges", "crashes", "b9915e0f6e7ca68d"));
        int nul = Array.IndexOf(data, (byte)0);
        string vocab = Path.Combine(_dir, "vocab.json"), merges = Path.Combine(_dir, "merges.txt");
        File.WriteAllBytes(vocab, nul < 0 ? data : data[..nul]);
        File.WriteAllBytes(merges, nul < 0 ? [] : data[(nul + 1)..]);
        var e = Assert.Throws<DataException>(() => ByteLevelBpeTokenizer.FromVocabAndMerges(vocab, merges, SpecialTokenNames.None))!;
        Assert.That(OneLine(e, vocab), Does.Contain("not valid JSON"));
    }

    // sentencepiece: a piece defined twice was kept; its second id encoded but could not be decoded.

    [Test]
    public void SentencePieceModelDefiningAPieceTwice()
    {
        string path = Input("sentencepiece", "309b85d5af20ac3a", "spiece.model");
        var e = Assert.Throws<DataException>(() => SentencePieceTextTokenizer.Load(path, SpecialTokenNames.None))!;
        Assert.That(OneLine(e, path), Does.Contain("piece \"<0xA0>\" is defined twice (ids 167 and 183)"));
    }
}
