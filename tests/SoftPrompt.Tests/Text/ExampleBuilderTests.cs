using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class ExampleBuilderTests : TextTestDirectory
{
    // Symbols make token counts obvious: one word, one id.
    private static readonly SymbolTokenizer Words = new(new Dictionary<string, int>
    {
        ["<pad>"] = 0, ["<s>"] = 1, ["</s>"] = 2, ["review:"] = 3, ["answer:"] = 4, ["good"] = 5, ["bad"] = 6,
        ["film"] = 7, ["plot"] = 8, ["positive"] = 9, ["negative"] = 10, ["very"] = 11, ["the"] = 12,
    }, SpecialTokenNames.None, "vocab.json");

    private static TokenizeOptions Options(int maxTokens = 64) => new() { MaxTokens = maxTokens, TargetEos = false };

    private TextTable Csv(string text) => TextTable.Read(Write("data.csv", text));

    [Test]
    public void TemplateAndVerbalizerMakeClassificationExamples()
    {
        var table = Csv("review,label\ngood film,1\nbad plot,0\nvery good,1\n");
        var mapping = ColumnMapping.From(null, "review: {review} answer:", "label", "0=negative,1=positive");
        var data = ExampleBuilder.Build(table, mapping, Words, Options() with { TargetEos = true });
        Assert.That(data.Examples[0].Input, Is.EqualTo(new[] { 3, 5, 7, 4 }));
        Assert.That(data.Examples[0].Target, Is.EqualTo(new[] { 9, 2 }), "target EOS appended");
        Assert.That(data.Examples[1].Target, Is.EqualTo(new[] { 10, 2 }));
        Assert.That(data.Classification!.LabelTexts, Is.EqualTo(new[] { "negative", "positive" }));
        Assert.That(data.Classification.LabelTokens, Is.EqualTo(new[] { new[] { 10, 2 }, new[] { 9, 2 } }));
        Assert.That(data.Classification.GoldLabels, Is.EqualTo(new[] { 1, 0, 1 }));
    }

    [Test]
    public void InputColumnAndFreeTextTarget()
    {
        var table = Csv("review,answer\ngood film,the plot\n");
        var data = ExampleBuilder.Build(table, ColumnMapping.From("review", null, "answer", null), Words, Options());
        Assert.That(data.Examples[0].Input, Is.EqualTo(new[] { 5, 7 }));
        Assert.That(data.Examples[0].Target, Is.EqualTo(new[] { 12, 8 }));
        Assert.That(data.Classification, Is.Null);
    }

    [Test]
    public void MissingColumnNamesItAndListsThePresentOnes()
    {
        var table = Csv("review,label\ngood,1\n");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, ColumnMapping.From(null, "{review} {topic}", "label", null), Words, Options()));
        Assert.That(e!.Message, Does.Contain("no column \"topic\"").And.Contain("\"review\", \"label\"").And.Contain("data.csv"));
    }

    [Test]
    public void UnknownLabelNamesTheRowOrIsSkipped()
    {
        var table = Csv("review,label\ngood,1\nbad,2\nfilm,0\n");
        var mapping = ColumnMapping.From("review", null, "label", "0=negative,1=positive");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, mapping, Words, Options()));
        Assert.That(e!.Message, Does.Contain("data.csv, row 2 (line 3)").And.Contain("\"2\""));

        var data = ExampleBuilder.Build(table, mapping, Words, Options() with { SkipBadRows = true });
        Assert.That(data.Examples, Has.Count.EqualTo(2));
        Assert.That(data.SkippedRows, Is.EqualTo(1));
        Assert.That(data.Classification!.GoldLabels, Is.EqualTo(new[] { 1, 0 }), "gold labels stay aligned with the kept examples");
    }

    [Test]
    public void SkipCountsIncludeReaderAndTokenizerFailures()
    {
        string path = Write("data.jsonl", """
            {"review": "good film", "label": "1"}
            not json
            {"review": "unknown words", "label": "1"}
            {"review": "bad", "label": null}
            {"review": "bad plot", "label": "0"}
            """);
        var table = TextTable.Read(path, skipBadRows: true);
        var data = ExampleBuilder.Build(table, ColumnMapping.From("review", null, "label", "0=negative,1=positive"), Words, Options() with { SkipBadRows = true });
        Assert.That(data.Examples, Has.Count.EqualTo(2));
        Assert.That(data.SkippedRows, Is.EqualTo(3));
        Assert.That(data.SkipReasons, Has.Count.EqualTo(3));
        Assert.That(data.SkipReasons[0], Does.Contain("row 2"));
        Assert.That(data.SkipReasons[1], Does.Contain("row 3").And.Contain("\"unknown\""));
        Assert.That(data.SkipReasons[2], Does.Contain("row 4").And.Contain("null"));
    }

    [Test]
    public void AllRowsBadIsAnErrorEvenWhenSkipping()
    {
        var table = Csv("review,label\nwho,1\n");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, ColumnMapping.From("review", null, "label", null), Words, Options() with { SkipBadRows = true }));
        Assert.That(e!.Message, Does.Contain("no usable rows").And.Contain("1 skipped"));
    }

    [Test]
    public void LongInputsLoseTheirStartAndKeepTheEndNextToTheAnswer()
    {
        var table = Csv("review,label\nvery very very good film,1\ngood,0\n");
        var mapping = ColumnMapping.From(null, "review: {review} answer:", "label", "0=negative,1=positive");
        var data = ExampleBuilder.Build(table, mapping, Words, Options(maxTokens: 5));
        Assert.That(data.Examples[0].Input, Is.EqualTo(new[] { 11, 5, 7, 4 }), "very good film answer:");
        Assert.That(data.Examples[0].Target, Is.EqualTo(new[] { 9 }));
        Assert.That(data.Examples[1].Input, Is.EqualTo(new[] { 3, 5, 4 }));
        Assert.That(data.TruncatedRows, Is.EqualTo(1));
        Assert.That(data.Examples.Max(e => e.Length), Is.LessThanOrEqualTo(5));
    }

    [Test]
    public void TruncationKeepsALeadingBos()
    {
        var table = Csv("review,answer\nvery very very good film,the plot\n");
        var options = Options(maxTokens: 5) with { AddBos = true };
        var data = ExampleBuilder.Build(table, ColumnMapping.From("review", null, "answer", null), Words, options);
        Assert.That(data.Examples[0].Input, Is.EqualTo(new[] { 1, 5, 7 }), "<s> good film");
        Assert.That(data.Examples[0].Target, Is.EqualTo(new[] { 12, 8 }), "the target is never truncated");
    }

    [Test]
    public void TargetThatLeavesNoRoomIsABadRow()
    {
        var table = Csv("review,answer\ngood,the plot\ngood,very very very good film\n");
        var mapping = ColumnMapping.From("review", null, "answer", null);
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, mapping, Words, Options(maxTokens: 5)));
        Assert.That(e!.Message, Does.Contain("row 2").And.Contain("target alone is 5 tokens"));
        var data = ExampleBuilder.Build(table, mapping, Words, Options(maxTokens: 5) with { SkipBadRows = true });
        Assert.That((data.Examples.Count, data.SkippedRows), Is.EqualTo((1, 1)));
    }

    [Test]
    public void InputEosAndTargetPrefix()
    {
        var table = Csv("review,answer\ngood,plot\n");
        var options = Options() with { InputEos = true, TargetEos = true, TargetPrefix = "the " };
        var data = ExampleBuilder.Build(table, ColumnMapping.From("review", null, "answer", null), Words, options);
        Assert.That(data.Examples[0].Input, Is.EqualTo(new[] { 5, 2 }));
        Assert.That(data.Examples[0].Target, Is.EqualTo(new[] { 12, 8, 2 }));
    }

    [Test]
    public void EmptyTargetIsABadRow()
    {
        var table = Csv("review,answer\ngood,\n");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, ColumnMapping.From("review", null, "answer", null), Words, Options()));
        Assert.That(e!.Message, Does.Contain("row 1").And.Contain("empty"));
    }

    [Test]
    public void IdsBeyondTheModelVocabularyAreBadRows()
    {
        var table = Csv("review,answer\ngood,plot\nthe,film\n");
        var options = Options() with { ModelVocabSize = 12 };
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, ColumnMapping.From("review", null, "answer", null), Words, options));
        Assert.That(e!.Message, Does.Contain("row 2").And.Contain("token id 12").And.Contain("[0, 12)"));
    }

    [Test]
    public void LabelsThatTokenizeAlikeAreRejected()
    {
        var table = Csv("review,label\ngood,1\n");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, ColumnMapping.From("review", null, "label", "0=good,1= good"), Words, Options()));
        Assert.That(e!.Message, Does.Contain("used twice").Or.Contain("same ids"));
    }

    [Test]
    public void BosRequestedFromATokenizerWithoutOneIsRefused()
    {
        var noBos = new SymbolTokenizer(new Dictionary<string, int> { ["good"] = 0 }, SpecialTokenNames.None, "vocab.json");
        var table = Csv("review,answer\ngood,good\n");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, ColumnMapping.From("review", null, "answer", null), noBos, Options() with { AddBos = true }));
        Assert.That(e!.Message, Does.Contain("no BOS"));
    }

    [Test]
    public void MappingNeedsExactlyOneInputSource()
    {
        Assert.Throws<DataException>(() => ColumnMapping.From(null, null, "label", null));
        Assert.Throws<DataException>(() => ColumnMapping.From("review", "{review}", "label", null));
    }

    [Test]
    public void ByteLevelBpeExamplesTokenizeInputAndTargetSeparately()
    {
        Gpt2TestVocab.WriteVocabAndMerges(Dir);
        var gpt2 = TokenizerLoader.Load(Dir);
        var table = Csv("sentence,label\n\"the lower\",1\n");
        var mapping = ColumnMapping.From(null, @"sentence: {sentence}\nanswer:", "label", "0=low,1=lower");
        var data = ExampleBuilder.Build(table, mapping, gpt2, new TokenizeOptions { MaxTokens = 64, TargetPrefix = " " });
        Assert.That(gpt2.Decode(data.Examples[0].Input), Is.EqualTo("sentence: the lower\nanswer:"));
        Assert.That(data.Examples[0].Target.Select(gpt2.TokenText), Is.EqualTo(new[] { "Ġlower", "<|endoftext|>" }));
        Assert.That(data.Classification!.LabelTokens[0].Select(gpt2.TokenText), Is.EqualTo(new[] { "Ġlow", "<|endoftext|>" }));
    }
}
