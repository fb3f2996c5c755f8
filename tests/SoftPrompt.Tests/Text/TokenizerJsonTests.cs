using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class TokenizerJsonTests : TextTestDirectory
{
    private static readonly string[] Samples =
        ["the lower lowest", "  the   x\n\tthe", "héllo 🙂 中文", "a<|endoftext|>b", "don't 123"];

    private ITextTokenizer FromJson(string json)
    {
        Write("tokenizer.json", json);
        return TokenizerLoader.Load(Dir);
    }

    private ITextTokenizer FromVocabAndMerges()
    {
        string other = Directory.CreateTempSubdirectory("softprompt-text-").FullName;
        try
        {
            Gpt2TestVocab.WriteVocabAndMerges(other);
            return TokenizerLoader.Load(other);
        }
        finally { Directory.Delete(other, recursive: true); }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void GivesTheSameIdsAsVocabAndMerges(bool pairMerges)
    {
        var json = FromJson(Gpt2TestVocab.TokenizerJson(pairMerges));
        var files = FromVocabAndMerges();
        Assert.That(json, Is.TypeOf<ByteLevelBpeTokenizer>());
        Assert.That(json.Description, Does.Contain("tokenizer.json"));
        foreach (string text in Samples)
        {
            Assert.That(json.Encode(text), Is.EqualTo(files.Encode(text)), text);
            Assert.That(json.Decode(json.Encode(text)), Is.EqualTo(text));
        }
        Assert.That(json.EosId, Is.EqualTo(Gpt2TestVocab.EndOfText));
    }

    [Test]
    public void SplitRegexThenByteLevelUsesTheSplitPattern()
    {
        string pattern = System.Text.Json.JsonSerializer.Serialize(ByteLevelBpeTokenizer.Gpt2Pattern);
        string pre = $$"""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": {{pattern}}}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}""";
        var json = FromJson(Gpt2TestVocab.TokenizerJson(preTokenizer: pre));
        var files = FromVocabAndMerges();
        foreach (string text in Samples) Assert.That(json.Encode(text), Is.EqualTo(files.Encode(text)), text);
    }

    [Test]
    public void TextBetweenSplitMatchesIsKeptAsItsOwnPiece()
    {
        // Only letter runs match; ", " and "!" are gaps that "Isolated" keeps (and must not be dropped).
        string pre = """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}""";
        var tokenizer = FromJson(Gpt2TestVocab.TokenizerJson(preTokenizer: pre));
        string text = "lo, lo!  lo";
        int[] ids = tokenizer.Encode(text);
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
        // Pieces: "lo" ", " "lo" "!  " "lo"; inside the gap "!  " the two spaces still merge to ĠĠ.
        Assert.That(ids.Select(tokenizer.TokenText), Is.EqualTo(new[] { "lo", ",", "Ġ", "lo", "!", "ĠĠ", "lo" }));
    }

    [Test]
    public void AddedTokensOutsideTheModelVocabularyAreUsedWhole()
    {
        var tokenizer = FromJson(Gpt2TestVocab.TokenizerJson(addedTokens: """[{"id": 265, "content": "<|endoftext|>"}, {"id": 300, "content": "<|sep|>"}]"""));
        Assert.That(tokenizer.Encode("x<|sep|>y"), Is.EqualTo(new[] { 'x', 300, 'y' }));
        Assert.That(tokenizer.VocabSize, Is.EqualTo(301));
        Assert.That(tokenizer.TokenText(300), Is.EqualTo("<|sep|>"));
    }

    [Test]
    public void WordPieceModelPointsToTheSentencePieceFiles()
    {
        var e = Assert.Throws<DataException>(() => FromJson(Gpt2TestVocab.TokenizerJson(modelType: "WordPiece")));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain("WordPiece").And.Contain("spiece.model"));
    }

    [TestCase("""{"type": "NFKC"}""", "NFKC")]
    [TestCase("""{"type": "Lowercase"}""", "Lowercase")]
    [TestCase("""{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""", "Replace")]
    public void NormalizersOtherThanNfcAreRefusedByName(string normalizer, string name)
    {
        var e = Assert.Throws<DataException>(() => FromJson(Gpt2TestVocab.TokenizerJson(normalizer: normalizer)));
        Assert.That(e!.Message, Does.Contain("normalizer " + name).And.Contain("tokenizer.json"));
    }

    [TestCase("""{"type": "NFC"}""")]
    [TestCase("""{"type": "Sequence", "normalizers": [{"type": "NFC"}]}""")]
    public void NfcNormalizerComposesBeforeSplitting(string normalizer)
    {
        var tokenizer = FromJson(Gpt2TestVocab.TokenizerJson(normalizer: normalizer));
        // "e" + combining acute becomes "é" (bytes C3 A9), as Hugging Face's NFC normalizer makes it.
        Assert.That(tokenizer.Encode("e\u0301").Select(tokenizer.TokenText), Is.EqualTo(new[] { "Ã", "©" }));
    }

    [Test]
    public void MetaspacePreTokenizerIsRefused()
    {
        var e = Assert.Throws<DataException>(() => FromJson(Gpt2TestVocab.TokenizerJson(preTokenizer: """{"type": "Metaspace", "replacement": "▁"}""")));
        Assert.That(e!.Message, Does.Contain("pre_tokenizer Metaspace"));
    }

    private const string ByteLevelNoRegex = """{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}""";

    [TestCase("""{"type": "Whitespace"}""", "pre_tokenizer Whitespace is not supported")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [{"type": "Punctuation"}, """ + ByteLevelNoRegex + "]}", "pre_tokenizer Punctuation")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [""" + ByteLevelNoRegex + """, {"type": "Digits", "individual_digits": true}]}""", "must end with ByteLevel")]
    [TestCase("""{"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Isolated", "invert": false}""", "must end with ByteLevel")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Removed", "invert": false}, """ + ByteLevelNoRegex + "]}", "behavior \"Removed\"")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Isolated", "invert": true}, """ + ByteLevelNoRegex + "]}", "invert")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "[a-z&&[^e]]"}, "behavior": "Isolated"}, """ + ByteLevelNoRegex + "]}", "intersection")]
    public void UnsupportedPreTokenizersAreRefusedByName(string preTokenizer, string message)
    {
        var e = Assert.Throws<DataException>(() => FromJson(Gpt2TestVocab.TokenizerJson(preTokenizer: preTokenizer)));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain(message));
    }

    [TestCase("\"dropout\": null", "\"dropout\": 0.1", "model.dropout")]
    [TestCase("\"dropout\": null", "\"continuing_subword_prefix\": \"##\"", "model.continuing_subword_prefix")]
    [TestCase("\"dropout\": null", "\"end_of_word_suffix\": \"</w>\"", "model.end_of_word_suffix")]
    [TestCase("\"special\": true", "\"special\": true, \"single_word\": true", "single_word")]
    public void UnsupportedModelAndAddedTokenOptionsAreRefusedByName(string find, string replace, string message)
    {
        string json = Gpt2TestVocab.TokenizerJson().Replace("\"type\": \"BPE\"", "\"type\": \"BPE\", \"dropout\": null");
        var e = Assert.Throws<DataException>(() => FromJson(json.Replace(find, replace)));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void SplitByLiteralStringAndDigits()
    {
        string pre = """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": "."}, "behavior": "Isolated"}, {"type": "Digits", "individual_digits": false}, {"type": "ByteLevel", "use_regex": false}]}""";
        var tokenizer = FromJson(Gpt2TestVocab.TokenizerJson(preTokenizer: pre));
        // "." is a literal, not "any character"; ByteLevel without its regex keeps " the" whole, so Ġthe merges.
        Assert.That(tokenizer.Encode("a. the12").Select(tokenizer.TokenText), Is.EqualTo(new[] { "a", ".", "Ġthe", "1", "2" }));
    }

    [Test]
    public void MalformedMergeNamesItsIndex()
    {
        string json = Gpt2TestVocab.TokenizerJson().Replace("\"h e\"", "\"h e r\"");
        var e = Assert.Throws<DataException>(() => FromJson(json));
        Assert.That(e!.Message, Does.Contain("model.merges[1]"));
    }

    [Test]
    public void TruncatedFileIsNotValidJson()
    {
        string json = Gpt2TestVocab.TokenizerJson();
        var e = Assert.Throws<DataException>(() => FromJson(json[..(json.Length / 2)]));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain("not valid JSON"));
    }
}
