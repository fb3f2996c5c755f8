using System.Text.Json.Nodes;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>The Unigram tokenizer.json reader on small hand-written files: what it accepts, and that it refuses by name what it does not support.</summary>
public sealed class UnigramTokenizerJsonTests : TextTestDirectory
{
    private ITextTokenizer Load(Action<JsonObject>? change = null)
    {
        var json = JsonNode.Parse(SentencePieceModelBuilder.T5LikeTokenizerJson())!.AsObject();
        change?.Invoke(json);
        Write("tokenizer.json", json.ToJsonString());
        return TokenizerLoader.Load(Dir);
    }

    private DataException Refused(Action<JsonObject> change)
    {
        var e = Assert.Throws<DataException>(() => Load(change))!;
        Assert.That(e.Message, Does.StartWith(PathOf("tokenizer.json")));
        return e;
    }

    [TestCase("hello world")]
    [TestCase("  the   world  ")]
    [TestCase("hello\u2603\u2603the")]
    [TestCase("")]
    public void GivesTheIdsOfItsSpieceModelTwin(string text)
    {
        // No character map, single spaces, no ties: here Hugging Face and sentencepiece agree.
        WriteBytes("spiece.model", SentencePieceModelBuilder.T5Like());
        var sentencePiece = SentencePieceTextTokenizer.Load(PathOf("spiece.model"), SpecialTokenNames.None);
        File.Delete(PathOf("spiece.model"));
        var unigram = Load();
        Assert.That(unigram, Is.TypeOf<UnigramTokenizer>());
        Assert.That(unigram.Encode(text), Is.EqualTo(sentencePiece.Encode(text)));
        Assert.That((unigram.EosId, unigram.PadId, unigram.BosId, unigram.VocabSize), Is.EqualTo((1, 0, (int?)null, 16)));
    }

    [Test]
    public void DecodesWithTheMetaspaceDecoder()
    {
        var tokenizer = Load();
        Assert.That(tokenizer.Decode(tokenizer.Encode("hello world")), Is.EqualTo("hello world"));
        Assert.That(tokenizer.Decode([5, 1]), Is.EqualTo("hello</s>"));
    }

    [Test]
    public void AddedTokensAreMatchedInTheRawText()
    {
        Assert.That(Load().Encode("hello</s>the"), Is.EqualTo(new[] { 5, 1, 4 }));
    }

    [Test]
    public void AddPrefixSpaceFalseWithoutPrependSchemeMeansNever()
    {
        var tokenizer = Load(json =>
        {
            foreach (string key in new[] { "pre_tokenizer", "decoder" })
                json[key] = JsonNode.Parse("""{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false}""");
        });
        Assert.That(tokenizer.Encode("hello"), Is.EqualTo(new[] { 8, 9, 11, 11, 12 }));
        Assert.That(tokenizer.Encode(" hello"), Is.EqualTo(new[] { 5 }));
    }

    [TestCase("""{"type": "NFKC"}""", "normalizer NFKC")]
    [TestCase("""{"type": "Sequence", "normalizers": [{"type": "Lowercase"}]}""", "normalizer Lowercase")]
    [TestCase("""{"type": "Precompiled", "precompiled_charsmap": "not base64!"}""", "precompiled_charsmap")]
    [TestCase("""{"type": "Precompiled", "precompiled_charsmap": "AAAA"}""", "precompiled_charsmap is broken")]
    [TestCase("""{"type": "Replace", "pattern": {"String": ""}, "content": "x"}""", "normalizer Replace")]
    public void UnsupportedNormalizersAreRefusedByName(string normalizer, string feature) =>
        Assert.That(Refused(json => json["normalizer"] = JsonNode.Parse(normalizer)).Message, Does.Contain(feature));

    [TestCase("""{"type": "ByteLevel", "add_prefix_space": false}""", "pre_tokenizer ByteLevel")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [{"type": "Punctuation"}, {"type": "Metaspace", "replacement": "▁"}]}""", "pre_tokenizer Punctuation, Metaspace")]
    [TestCase("""{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}]}""", "prepend_scheme \"first\" after WhitespaceSplit")]
    [TestCase("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}""", "prepend_scheme \"sometimes\"")]
    [TestCase("""{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false, "prepend_scheme": "always"}""", "add_prefix_space = false")]
    [TestCase("""{"type": "Metaspace", "replacement": "ab"}""", "one-character \"replacement\"")]
    [TestCase("null", "no \"pre_tokenizer\"")]
    public void UnsupportedPreTokenizersAreRefusedByName(string preTokenizer, string feature) =>
        Assert.That(Refused(json => json["pre_tokenizer"] = JsonNode.Parse(preTokenizer)).Message, Does.Contain(feature));

    [TestCase("""{"type": "ByteFallback"}""", "decoder ByteFallback")]
    [TestCase("""{"type": "Metaspace", "replacement": "_"}""", "replacement")]
    public void UnsupportedDecodersAreRefusedByName(string decoder, string feature) =>
        Assert.That(Refused(json => json["decoder"] = JsonNode.Parse(decoder)).Message, Does.Contain(feature));

    [TestCase("""["▁the"]""", "model.vocab[4]")]
    [TestCase("""["", -1.0]""", "model.vocab[4]")]
    [TestCase("""["▁hello", -1.0]""", "already model.vocab[4]")]
    public void BrokenVocabularyEntriesAreNamed(string entry, string where) =>
        Assert.That(Refused(json => json["model"]!["vocab"]![4] = JsonNode.Parse(entry)).Message, Does.Contain(where));

    [Test]
    public void UnknownIdOutsideTheVocabularyIsRefused() =>
        Assert.That(Refused(json => json["model"]!["unk_id"] = 16).Message, Does.Contain("model.unk_id = 16"));

    [Test]
    public void TextTheVocabularyCannotSpellWithoutUnkIdIsRefusedWhenEncoded()
    {
        var tokenizer = Load(json => json["model"]!["unk_id"] = null);
        Assert.That(tokenizer.Encode("hello"), Is.EqualTo(new[] { 5 }));
        var e = Assert.Throws<DataException>(() => tokenizer.Encode("hello \u2603"))!;
        Assert.That(e.Message, Does.Contain("model.unk_id is null").And.Contain("\u2603"));
    }
}
