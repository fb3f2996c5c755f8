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
    public void TokenizerJsonWinsOverVocabAndMerges()
    {
        // Qwen2 and SmolLM ship both; only tokenizer.json holds the added tokens and the pre-tokenizer.
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("tokenizer.json", Gpt2TestVocab.TokenizerJson(addedTokens: """[{"id": 265, "content": "<|endoftext|>"}, {"id": 300, "content": "<|im_start|>"}]"""));
        var tokenizer = TokenizerLoader.Load(Dir);
        Assert.That(tokenizer.Description, Does.Contain("tokenizer.json"));
        Assert.That(tokenizer.Encode("<|im_start|>"), Is.EqualTo(new[] { 300 }));
    }

    [Test]
    public void UnsupportedTokenizerJsonIsRefusedEvenBesideVocabAndMerges()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        Write("tokenizer.json", "{ not even json");
        var e = Assert.Throws<DataException>(() => TokenizerLoader.Load(Dir));
        Assert.That(e!.Message, Does.Contain("tokenizer.json"));
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
