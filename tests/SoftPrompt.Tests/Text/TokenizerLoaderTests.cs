using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class TokenizerLoaderTests : TextTestDirectory
{
    [Test]
    public void EmptyDirectoryNamesEveryFileLookedFor()
    {
        var e = Assert.Throws<DataException>(() => TokenizerLoader.Load(Dir));
        foreach (string file in new[] { "vocab.json", "merges.txt", "spiece.model", "tokenizer.model", "tokenizer.json" })
            Assert.That(e!.Message, Does.Contain(file));
        Assert.That(e!.Message, Does.StartWith(Dir));
    }

    [Test]
    public void MissingDirectoryIsReported()
    {
        var e = Assert.Throws<DataException>(() => TokenizerLoader.Load(PathOf("nope")));
        Assert.That(e!.Message, Does.Contain("nope").And.Contain("not found"));
    }

    [Test]
    public void VocabAndMergesWinOverTokenizerJson()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("tokenizer.json", "{ not even json");
        Assert.That(TokenizerLoader.Load(Dir).Description, Does.Contain("vocab.json + merges.txt"));
    }

    [Test]
    public void SentencePieceWinsOverTokenizerJson()
    {
        WriteBytes("spiece.model", SentencePieceModelBuilder.T5Like());
        Write("tokenizer.json", Gpt2TestVocab.TokenizerJson(modelType: "Unigram"));
        Assert.That(TokenizerLoader.Load(Dir), Is.TypeOf<SentencePieceTextTokenizer>());
    }

    [Test]
    public void TokenizerJsonWinsOverALoneVocabJson()
    {
        Write("tokenizer.json", Gpt2TestVocab.TokenizerJson());
        Write("vocab.json", Gpt2TestVocab.VocabJson());
        Assert.That(TokenizerLoader.Load(Dir).Description, Does.Contain("tokenizer.json"));
    }

    [Test]
    public void CorruptTokenizerConfigNamesTheFile()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("tokenizer_config.json", "{\"eos_token\": ");
        var e = Assert.Throws<DataException>(() => TokenizerLoader.Load(Dir));
        Assert.That(e!.Message, Does.Contain("tokenizer_config.json"));
    }
}
