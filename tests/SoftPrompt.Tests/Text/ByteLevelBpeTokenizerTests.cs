using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class ByteLevelBpeTokenizerTests : TextTestDirectory
{
    private ByteLevelBpeTokenizer Load(SpecialTokenNames? names = null)
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        return ByteLevelBpeTokenizer.FromVocabAndMerges(PathOf("vocab.json"), PathOf("merges.txt"), names ?? SpecialTokenNames.None);
    }

    [TestCase("")]
    [TestCase("the lower lowest")]
    [TestCase("héllo wörld, ça va?")]
    [TestCase("emoji 🙂 and a family 👩‍👩‍👧 and a flag 🇯🇵")]
    [TestCase("中文字符 and 日本語のテキスト 한국어")]
    [TestCase(" leading space")]
    [TestCase("   three leading spaces")]
    [TestCase("multiple   spaces    inside")]
    [TestCase("trailing spaces   ")]
    [TestCase("new\nlines\n\nand\r\nCRLF\n")]
    [TestCase("\ttabs\tand \t mixed\t")]
    [TestCase("don't we'll they're 12345 3.14")]
    [TestCase("control \u0000 \u007f \u00ad bytes")]
    [TestCase("𝐀 astral letters 𠜎")]
    [TestCase("a<|endoftext|>b")]
    public void RoundTripsAnyText(string text)
    {
        var tokenizer = Load();
        int[] ids = tokenizer.Encode(text);
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
        Assert.That(ids, Has.All.InRange(0, tokenizer.VocabSize - 1));
    }

    [TestCase("the lower lowest", new[] { "t", "he", "Ġlower", "Ġlow", "e", "s", "t" })]
    [TestCase(" the", new[] { "Ġthe" })]
    [TestCase("  the", new[] { "Ġ", "Ġthe" })]
    [TestCase("   x", new[] { "ĠĠ", "Ġ", "x" })]
    [TestCase("the\nthe", new[] { "t", "he", "Ċ", "t", "he" })]
    [TestCase("é", new[] { "Ã", "©" })]
    public void SplitsAsTheMergesDictate(string text, string[] expected)
    {
        var tokenizer = Load();
        string[] tokens = [.. tokenizer.Encode(text).Select(tokenizer.TokenText)];
        Assert.That(tokens, Is.EqualTo(expected));
    }

    [Test]
    public void EndOfTextIsOneSpecialTokenAndTheDefaultBosAndEos()
    {
        var tokenizer = Load();
        Assert.That(tokenizer.Encode("a<|endoftext|>b"), Is.EqualTo(new[] { 'a', Gpt2TestVocab.EndOfText, 'b' }));
        Assert.That(tokenizer.EosId, Is.EqualTo(Gpt2TestVocab.EndOfText));
        Assert.That(tokenizer.BosId, Is.EqualTo(Gpt2TestVocab.EndOfText));
        Assert.That(tokenizer.PadId, Is.Null);
        Assert.That(tokenizer.VocabSize, Is.EqualTo(Gpt2TestVocab.EndOfText + 1));
        Assert.That(tokenizer.Description, Does.Contain("vocab.json + merges.txt"));
    }

    [Test]
    public void DeclaredSpecialTokensComeFromTokenizerConfig()
    {
        Write("tokenizer_config.json", """{"pad_token": {"content": "Ġthe", "special": true}, "eos_token": "<|endoftext|>"}""");
        var tokenizer = Load(SpecialTokenNames.Read(Dir));
        Assert.That(tokenizer.PadId, Is.EqualTo(Gpt2TestVocab.Vocab()["Ġthe"]));
        Assert.That(tokenizer.EosId, Is.EqualTo(Gpt2TestVocab.EndOfText));
    }

    [Test]
    public void DeclaredTokenMissingFromVocabularyNamesTheConfigFile()
    {
        Write("special_tokens_map.json", """{"pad_token": "<pad>"}""");
        var e = Assert.Throws<DataException>(() => Load(SpecialTokenNames.Read(Dir)));
        Assert.That(e!.Message, Does.Contain("special_tokens_map.json").And.Contain("pad_token").And.Contain("<pad>"));
    }

    [Test]
    public void AddedTokensJsonIsRead()
    {
        // A [PAD] added to GPT-2 after training: matched whole, declared as PAD, decoded back.
        Write("added_tokens.json", $$"""{"[PAD]": {{Gpt2TestVocab.EndOfText + 1}}}""");
        Write("special_tokens_map.json", """{"pad_token": "[PAD]"}""");
        var tokenizer = Load(SpecialTokenNames.Read(Dir));
        int pad = Gpt2TestVocab.EndOfText + 1;
        Assert.That(tokenizer.Encode("a[PAD] b"), Is.EqualTo(new[] { 'a', pad, ' ', 'b' }));
        Assert.That(tokenizer.PadId, Is.EqualTo(pad));
        Assert.That(tokenizer.Decode([.. tokenizer.Encode("a[PAD] b")]), Is.EqualTo("a[PAD] b"));
        Assert.That(tokenizer.Description, Does.Contain("added_tokens.json"));
    }

    [Test]
    public void AddedTokensJsonReusingAVocabularyIdIsRefused()
    {
        Write("added_tokens.json", """{"[PAD]": 32}""");
        var e = Assert.Throws<DataException>(() => Load());
        Assert.That(e!.Message, Does.Contain("added_tokens.json").And.Contain("[PAD]").And.Contain("\"Ġ\""));
    }

    [Test]
    public void LoneSurrogatesAreEncodedAsTheReplacementCharacter()
    {
        // Text reaches Hugging Face as UTF-8, where an unpaired surrogate can only be U+FFFD.
        var tokenizer = Load();
        Assert.That(tokenizer.Encode("x\uD800y \uDC00"), Is.EqualTo(tokenizer.Encode("x\uFFFDy \uFFFD")));
    }

    [Test]
    public void TokenTextOfUnknownIdIsAPlaceholderButDecodeRejectsIt()
    {
        var tokenizer = Load();
        Assert.That(tokenizer.TokenText(32), Is.EqualTo("Ġ"));
        Assert.That(tokenizer.TokenText(100_000), Is.EqualTo("<id 100000>"));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([1, 100_000]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
    }

    [Test]
    public void CorruptVocabJsonNamesTheFile()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("vocab.json", "{\"a\": 0, ");
        var e = Assert.Throws<DataException>(() => ByteLevelBpeTokenizer.FromVocabAndMerges(PathOf("vocab.json"), PathOf("merges.txt"), SpecialTokenNames.None));
        Assert.That(e!.Message, Does.Contain("vocab.json").And.Contain("not valid JSON"));
    }

    [Test]
    public void SharedIdsInVocabJsonAreRejected()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("vocab.json", "{\"a\": 0, \"b\": 0}");
        var e = Assert.Throws<DataException>(() => ByteLevelBpeTokenizer.FromVocabAndMerges(PathOf("vocab.json"), PathOf("merges.txt"), SpecialTokenNames.None));
        Assert.That(e!.Message, Does.Contain("share id 0"));
    }

    [Test]
    public void MalformedMergeLineNamesTheLine()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("merges.txt", "#version: 0.2\nĠ t\nh e x\n");
        var e = Assert.Throws<DataException>(() => ByteLevelBpeTokenizer.FromVocabAndMerges(PathOf("vocab.json"), PathOf("merges.txt"), SpecialTokenNames.None));
        Assert.That(e!.Message, Does.Contain("merges.txt, line 3"));
    }

    [Test]
    public void MergeOutsideTheVocabularyNamesTheLineAndToken()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("merges.txt", "#version: 0.2\nĠ t\nx y\n");
        var e = Assert.Throws<DataException>(() => ByteLevelBpeTokenizer.FromVocabAndMerges(PathOf("vocab.json"), PathOf("merges.txt"), SpecialTokenNames.None));
        Assert.That(e!.Message, Does.Contain("merges.txt, line 3").And.Contain("\"xy\""));
    }

    [Test]
    public void VocabularyWithoutEveryByteIsNotByteLevel()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        var vocab = Gpt2TestVocab.Vocab();
        vocab.Remove("Ġ");
        Write("vocab.json", System.Text.Json.JsonSerializer.Serialize(vocab));
        Write("merges.txt", "#version: 0.2\nh e\n");
        var e = Assert.Throws<DataException>(() => ByteLevelBpeTokenizer.FromVocabAndMerges(PathOf("vocab.json"), PathOf("merges.txt"), SpecialTokenNames.None));
        Assert.That(e!.Message, Does.Contain("byte 0x20"));
    }
}
