using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class SentencePieceTextTokenizerTests : TextTestDirectory
{
    private ITextTokenizer Load(string name, byte[] model)
    {
        WriteBytes(name, model);
        return TokenizerLoader.Load(Dir);
    }

    [Test]
    public void T5LikeUnigramWithoutBosLoadsAndEncodes()
    {
        var tokenizer = Load("spiece.model", SentencePieceModelBuilder.T5Like());
        Assert.That(tokenizer, Is.TypeOf<SentencePieceTextTokenizer>());
        Assert.That(tokenizer.Description, Does.Contain("Unigram").And.Contain("spiece.model"));
        Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.PadId), Is.EqualTo(((int?)null, (int?)1, (int?)0)));
        Assert.That(tokenizer.VocabSize, Is.EqualTo(16));
        Assert.That(tokenizer.Encode("hello world").Select(tokenizer.TokenText), Is.EqualTo(new[] { "▁hello", "▁wor", "ld" }));
        Assert.That(tokenizer.Decode(tokenizer.Encode("hello world")), Is.EqualTo("hello world"));
    }

    [Test]
    public void T5LikeModelFoldsWhitespaceAsItsNormalizerSays()
    {
        var tokenizer = Load("spiece.model", SentencePieceModelBuilder.T5Like());
        Assert.That(tokenizer.Encode("  the   world "), Is.EqualTo(tokenizer.Encode("the world")));
    }

    [Test]
    public void LlamaLikeBpeSplitsByScoreAndFallsBackToBytes()
    {
        var tokenizer = Load("tokenizer.model", SentencePieceModelBuilder.LlamaLike());
        Assert.That(tokenizer.Description, Does.Contain("BPE").And.Contain("tokenizer.model"));
        Assert.That((tokenizer.BosId, tokenizer.EosId, tokenizer.PadId), Is.EqualTo(((int?)1, (int?)2, (int?)null)));
        Assert.That(tokenizer.Encode("the world").Select(tokenizer.TokenText), Is.EqualTo(new[] { "▁the", "▁world" }));
        // 'x' has no piece: its byte 0x78 stands in.
        Assert.That(tokenizer.Encode("x").Select(tokenizer.TokenText), Is.EqualTo(new[] { "▁", "<0x78>" }));
    }

    [TestCase("the world")]
    [TestCase("héllo 🙂 世界")]
    [TestCase("the  world\nnew line\ttab")]
    public void LlamaLikeBpeRoundTripsThroughByteFallback(string text)
    {
        var tokenizer = Load("tokenizer.model", SentencePieceModelBuilder.LlamaLike());
        Assert.That(tokenizer.Decode(tokenizer.Encode(text)), Is.EqualTo(text));
    }

    [Test]
    public void GarbageFileNamesTheFile()
    {
        var e = Assert.Throws<DataException>(() => Load("spiece.model", [0xFF, 0xFF, 0xFF, 0x07, 0x01]));
        Assert.That(e!.Message, Does.Contain("spiece.model"));
    }

    [Test]
    public void TruncatedModelNamesTheFile()
    {
        byte[] model = SentencePieceModelBuilder.T5Like();
        var e = Assert.Throws<DataException>(() => Load("spiece.model", model[..(model.Length - 7)]));
        Assert.That(e!.Message, Does.Contain("spiece.model").And.Contain("not a SentencePiece model"));
    }

    [Test]
    public void MalformedBytePieceNamesThePiece()
    {
        var pieces = new List<(string, float, int)> { ("<unk>", 0, SentencePieceModelBuilder.Unknown) };
        for (int b = 0; b < 256; b++) pieces.Add((b == 0x41 ? "<0xZZ>" : $"<0x{b:X2}>", 0, SentencePieceModelBuilder.Byte));
        byte[] model = SentencePieceModelBuilder.Model(modelType: 2, pieces, byteFallback: true, unk: 0, bos: -1, eos: -1, pad: -1, removeExtraWhitespace: false);
        var e = Assert.Throws<DataException>(() => Load("tokenizer.model", model));
        Assert.That(e!.Message, Does.Contain("tokenizer.model").And.Contain("<0xZZ>"));
    }

    [Test]
    public void TextFileIsNotAModel()
    {
        var e = Assert.Throws<DataException>(() => Load("tokenizer.model", "this is not a protobuf\n"u8.ToArray()));
        Assert.That(e!.Message, Does.Contain("tokenizer.model"));
    }
}
