using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class SymbolTokenizerTests : TextTestDirectory
{
    private const string Vocab = """{"<pad>": 0, "</s>": 1, "a": 2, "b": 3, "+": 4, "=": 5, "ab": 6}""";

    [Test]
    public void VocabJsonWithoutMergesIsASymbolVocabulary()
    {
        Write("vocab.json", Vocab);
        var tokenizer = TokenizerLoader.Load(Dir);
        Assert.That(tokenizer, Is.TypeOf<SymbolTokenizer>());
        Assert.That(tokenizer.Encode(" a + b\n=\tab "), Is.EqualTo(new[] { 2, 4, 3, 5, 6 }));
        Assert.That(tokenizer.Decode([2, 4, 3, 5, 6]), Is.EqualTo("a + b = ab"));
        Assert.That((tokenizer.EosId, tokenizer.PadId, tokenizer.BosId), Is.EqualTo(((int?)1, (int?)0, (int?)null)));
        Assert.That(tokenizer.VocabSize, Is.EqualTo(7));
    }

    [Test]
    public void DemoStyleVocabularyFindsItsEosAndSeparator()
    {
        Write("vocab.json", """{"0": 0, "1": 1, "a": 2, "<sep>": 3, "<copy>": 4, "<eos>": 5}""");
        var tokenizer = TokenizerLoader.Load(Dir);
        Assert.That(tokenizer.EosId, Is.EqualTo(5));
        Assert.That(tokenizer.Encode("1 a 0 <sep>"), Is.EqualTo(new[] { 1, 2, 0, 3 }));
        Assert.That(tokenizer.Description, Does.Contain("symbol vocabulary").And.Contain("6 symbols"));
    }

    [Test]
    public void UnknownSymbolIsAnErrorNamingItAndTheFile()
    {
        Write("vocab.json", Vocab);
        var tokenizer = TokenizerLoader.Load(Dir);
        var e = Assert.Throws<DataException>(() => tokenizer.Encode("a + c"));
        Assert.That(e!.Message, Does.Contain("\"c\"").And.Contain("vocab.json"));
    }

    [Test]
    public void ByteLevelVocabularyMissingItsMergesIsReported()
    {
        Write("vocab.json", Gpt2TestVocab.VocabJson());
        var e = Assert.Throws<DataException>(() => TokenizerLoader.Load(Dir));
        Assert.That(e!.Message, Does.Contain("merges.txt"));
    }
}
