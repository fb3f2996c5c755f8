using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class JsonlTableTests : TextTestDirectory
{
    [Test]
    public void ReadsValuesAsStringsAndColumnsInOrderOfFirstUse()
    {
        string path = Write("data.jsonl", """
            {"sentence": "héllo 🙂", "label": 1, "score": 0.5}

            {"sentence": "two", "label": 0, "ok": true, "extra": null, "tags": ["a", "b"]}
            """);
        var table = TextTable.Read(path);
        Assert.That(table.Columns, Is.EqualTo(new[] { "sentence", "label", "score", "ok", "extra", "tags" }));
        Assert.That(table.Rows, Has.Count.EqualTo(2));
        Assert.That(table.Rows[0].Values["sentence"], Is.EqualTo("héllo 🙂"));
        Assert.That(table.Rows[0].Values["label"], Is.EqualTo("1"));
        Assert.That(table.Rows[0].Values["score"], Is.EqualTo("0.5"));
        Assert.That(table.Rows[1].Number, Is.EqualTo(3), "JSONL rows are numbered by line, blank lines included");
        Assert.That(table.Rows[1].Values["ok"], Is.EqualTo("true"));
        Assert.That(table.Rows[1].Values["extra"], Is.Null);
        Assert.That(table.Rows[1].Values["tags"], Is.EqualTo("""["a", "b"]"""));
    }

    [Test]
    public void InvalidJsonNamesFileAndRow()
    {
        string path = Write("data.jsonl", "{\"a\": \"x\"}\n{\"a\": \"y\"}\n{\"a\": \"z\",\n");
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith($"{path}, row 3:").And.Contain("not valid JSON"));
    }

    [Test]
    public void NonObjectRowNamesFileAndRow()
    {
        string path = Write("data.jsonl", "{\"a\": \"x\"}\n[1, 2]\n");
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith($"{path}, row 2:").And.Contain("expected a JSON object"));
    }

    [Test]
    public void SkippingCountsBadRowsAndKeepsTheRest()
    {
        string path = Write("data.jsonl", "{\"a\": \"x\"}\nnot json\n\"string\"\n{\"a\": \"y\"}\n{oops}\n");
        var table = TextTable.Read(path, skipBadRows: true);
        Assert.That(table.Rows.Select(r => r.Values["a"]), Is.EqualTo(new[] { "x", "y" }));
        Assert.That(table.SkippedRows, Is.EqualTo(3));
        Assert.That(table.SkipReasons[0], Does.Contain("row 2"));
        Assert.That(table.SkipReasons[2], Does.Contain("row 5"));
    }

    [Test]
    public void InvalidUtf8NamesTheLine()
    {
        string path = WriteBytes("data.jsonl", [.. "{\"a\": \"x\"}\n{\"a\": \""u8, 0xC3, 0x28, .. "\"}\n"u8]);
        var e = Assert.Throws<DataException>(() => TextTable.Read(path, skipBadRows: true));
        Assert.That(e!.Message, Does.Contain($"{path}, line 2").And.Contain("UTF-8"));
    }

    [Test]
    public void UnknownExtensionAndMissingFileAreReported()
    {
        Assert.That(Assert.Throws<DataException>(() => TextTable.Read(Write("data.txt", "x")))!.Message, Does.Contain(".jsonl, .csv, .tsv or .parquet"));
        Assert.That(Assert.Throws<DataException>(() => TextTable.Read(PathOf("none.jsonl")))!.Message, Does.Contain("not found"));
    }
}
