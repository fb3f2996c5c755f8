using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class CsvTableTests : TextTestDirectory
{
    [Test]
    public void ReadsRfc4180Quoting()
    {
        string path = Write("data.csv",
            "sentence,label\r\n" +
            "plain,0\r\n" +
            "\"with, comma\",1\r\n" +
            "\"with \"\"quotes\"\"\",0\r\n" +
            "\"two\r\nlines\",1\r\n" +
            ",\"\"\r\n" +
            "an \"inner\" quote,0\r\n" +
            "héllo 🙂 中文,1");
        var table = TextTable.Read(path);
        Assert.That(table.Columns, Is.EqualTo(new[] { "sentence", "label" }));
        Assert.That(table.Rows.Select(r => r.Values["sentence"]), Is.EqualTo(new[]
        {
            "plain", "with, comma", "with \"quotes\"", "two\r\nlines", "", "an \"inner\" quote", "héllo 🙂 中文",
        }));
        Assert.That(table.Rows.Select(r => r.Values["label"]), Is.EqualTo(new[] { "0", "1", "0", "1", "", "0", "1" }));
        // Row 5 starts after the two-line row 4 (lines 5-6), so on line 7.
        Assert.That(table.Rows[4].Number, Is.EqualTo(5));
        Assert.That(table.Rows[4].Line, Is.EqualTo(7));
    }

    [Test]
    public void ReadsTsvWithBomAndBlankLines()
    {
        string path = WriteBytes("data.tsv", [0xEF, 0xBB, 0xBF, .. "sentence\tlabel\n\na, b\t1\n\"tab\there\"\t0\n\n"u8]);
        var table = TextTable.Read(path);
        Assert.That(table.Columns, Is.EqualTo(new[] { "sentence", "label" }));
        Assert.That(table.Rows.Select(r => r.Values["sentence"]), Is.EqualTo(new[] { "a, b", "tab\there" }));
    }

    [Test]
    public void WrongFieldCountNamesRowAndLine()
    {
        string path = Write("data.csv", "a,b\n1,2\n\"x\ny\",3\n4,5,6\n");
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith($"{path}, row 3 (line 5):").And.Contain("3 fields but the header has 2"));
    }

    [Test]
    public void UnclosedQuoteNamesRowAndOpeningLine()
    {
        string path = Write("data.csv", "a,b\n1,2\n\"never closed,3\n4,5\n");
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith($"{path}, row 2 (line 3):").And.Contain("never closes"));
    }

    [Test]
    public void TextAfterClosingQuoteNamesTheRow()
    {
        string path = Write("data.csv", "a,b\n\"x\"y,1\n2,3\n");
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith($"{path}, row 1 (line 2):").And.Contain("after the closing"));
    }

    [Test]
    public void SkippingResumesAfterAMalformedRow()
    {
        string path = Write("data.csv", "a,b\n1,2\n\"x\"y,1\n3\n4,5\n\"open,6\n");
        var table = TextTable.Read(path, skipBadRows: true);
        Assert.That(table.Rows.Select(r => r.Values["a"]), Is.EqualTo(new[] { "1", "4" }));
        Assert.That(table.Rows[1].Number, Is.EqualTo(4));
        Assert.That(table.SkippedRows, Is.EqualTo(3));
    }

    [Test]
    public void HeaderProblemsAreFatal()
    {
        Assert.That(Assert.Throws<DataException>(() => TextTable.Read(Write("empty.csv", "")))!.Message, Does.Contain("header"));
        Assert.That(Assert.Throws<DataException>(() => TextTable.Read(Write("dup.csv", "a,b,a\n1,2,3\n"), skipBadRows: true))!.Message,
            Does.Contain("\"a\" twice"));
    }
}
