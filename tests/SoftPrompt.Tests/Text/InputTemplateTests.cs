using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class InputTemplateTests
{
    private static readonly Dictionary<string, string> Row = new() { ["sentence"] = "it was great", ["topic"] = "film" };

    [Test]
    public void ReplacesColumnsAndEscapes()
    {
        var template = InputTemplate.Parse(@"topic: {topic}\nsentence: {sentence}\n{{not a column}}\tend\\n {topic}");
        Assert.That(template.Columns, Is.EqualTo(new[] { "topic", "sentence" }));
        Assert.That(template.Render(c => Row[c]), Is.EqualTo("topic: film\nsentence: it was great\n{not a column}\tend\\n film"));
    }

    [Test]
    public void RealNewlinesPassThrough()
    {
        var template = InputTemplate.Parse("sentence: {sentence}\nanswer:");
        Assert.That(template.Render(c => Row[c]), Is.EqualTo("sentence: it was great\nanswer:"));
    }

    [TestCase("sentence: {sentence", "never closed")]
    [TestCase("sentence} {sentence}", "closes nothing")]
    [TestCase("empty {} {sentence}", "column name")]
    [TestCase("nested {a{b}}", "column name")]
    [TestCase("no columns at all", "uses no column")]
    public void MalformedTemplatesSayWhatToFix(string text, string problem)
    {
        var e = Assert.Throws<DataException>(() => InputTemplate.Parse(text));
        Assert.That(e!.Message, Does.Contain(text).And.Contain(problem));
    }
}
