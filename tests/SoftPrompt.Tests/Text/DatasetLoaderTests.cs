using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class DatasetLoaderTests : TextTestDirectory
{
    private static readonly SymbolTokenizer Words = new(new Dictionary<string, int>
    {
        ["</s>"] = 0, ["good"] = 1, ["bad"] = 2, ["yes"] = 3, ["no"] = 4,
    }, SpecialTokenNames.None, "vocab.json");

    [Test]
    public void PretokenizedJsonlIsStillReadAsIds()
    {
        string path = Write("data.jsonl", "{\"input_ids\": [1, 2], \"target_ids\": [3]}\n{\"target_ids\": [4]}\n");
        Assert.That(PretokenizedJsonl.IsPretokenized(path), Is.True);
        var data = DatasetLoader.Load(path, null, null, new TokenizeOptions { MaxTokens = 8, ModelVocabSize = 5 });
        Assert.That(data.Examples.Select(e => e.Input), Is.EqualTo(new[] { new[] { 1, 2 }, Array.Empty<int>() }));
        Assert.That(data.Examples.Select(e => e.Target), Is.EqualTo(new[] { new[] { 3 }, new[] { 4 } }));
        Assert.That(data.Classification, Is.Null);
    }

    [Test]
    public void PretokenizedRowsCanBeSkipped()
    {
        string path = Write("data.jsonl", "{\"input_ids\": [1], \"target_ids\": [3]}\n{\"input_ids\": [9], \"target_ids\": [3]}\n{\"input_ids\": [1]}\n{\"target_ids\": [2]}\n");
        var e = Assert.Throws<DataException>(() => DatasetLoader.Load(path, Words, null, new TokenizeOptions { MaxTokens = 8 }));
        Assert.That(e!.Message, Does.Contain("row 2").And.Contain("outside the model's vocabulary"));
        var data = DatasetLoader.Load(path, Words, null, new TokenizeOptions { MaxTokens = 8, SkipBadRows = true });
        Assert.That((data.Examples.Count, data.SkippedRows), Is.EqualTo((2, 2)));
        Assert.That(data.SkipReasons[1], Does.Contain("row 3").And.Contain("target_ids"));
    }

    [Test]
    public void PretokenizedDataRefusesColumnOptions()
    {
        string path = Write("data.jsonl", "{\"input_ids\": [1], \"target_ids\": [3]}\n");
        var e = Assert.Throws<DataException>(() => DatasetLoader.Load(path, Words, ColumnMapping.From("a", null, "b", null), new TokenizeOptions { MaxTokens = 8 }));
        Assert.That(e!.Message, Does.Contain("pre-tokenized"));
    }

    [Test]
    public void TextJsonlIsMappedAndTokenized()
    {
        string path = Write("data.jsonl", "{\"text\": \"good\", \"label\": true}\n{\"text\": \"bad\", \"label\": false}\n");
        Assert.That(PretokenizedJsonl.IsPretokenized(path), Is.False);
        var data = DatasetLoader.Load(path, Words, ColumnMapping.From("text", null, "label", "false=no,true=yes"), new TokenizeOptions { MaxTokens = 8 });
        Assert.That(data.Examples.Select(e => e.Target), Is.EqualTo(new[] { new[] { 3, 0 }, new[] { 4, 0 } }));
        Assert.That(data.Classification!.GoldLabels, Is.EqualTo(new[] { 1, 0 }));
    }

    [Test]
    public void TextDataWithoutMappingListsTheColumns()
    {
        string path = Write("data.csv", "sentence,label\ngood,1\n");
        var e = Assert.Throws<DataException>(() => DatasetLoader.Load(path, Words, null, new TokenizeOptions { MaxTokens = 8 }));
        Assert.That(e!.Message, Does.Contain("`ColumnMapping.InputColumn`").And.Contain("sentence, label"));
    }

    [Test]
    public void TextDataWithoutTokenizerIsExplained()
    {
        string path = Write("data.csv", "sentence,label\ngood,1\n");
        var e = Assert.Throws<DataException>(() => DatasetLoader.Load(path, null, ColumnMapping.From("sentence", null, "label", null), new TokenizeOptions { MaxTokens = 8 }));
        Assert.That(e!.Message, Does.Contain("needs a tokenizer"));
    }
}
