using Parquet;
using Parquet.Schema;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

public sealed class ParquetTableTests : TextTestDirectory
{
    private async Task<string> WriteParquet(string name, int rowGroups)
    {
        string path = PathOf(name);
        var sentence = new DataField<string>("sentence");
        var label = new DataField<long>("label");
        var score = new DataField<double?>("score");
        var ok = new DataField<bool>("ok");
        var tags = new DataField<int[]>("tags");
        var schema = new ParquetSchema(sentence, label, score, ok, tags);
        await using var stream = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(schema, stream);
        for (int g = 0; g < rowGroups; g++)
        {
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(sentence, new[] { $"héllo 🙂 {g}", "two, \"quoted\"" }, null);
            await group.WriteAsync<long>(label, new long[] { 1, 0 }, null, null, default);
            await group.WriteAsync<double>(score, new double?[] { 0.25, null }, null, null, default);
            await group.WriteAsync<bool>(ok, new[] { true, false }, null, null, default);
            await group.WriteAllPartsAsync<int>(tags, new[] { 1, 2, 3 }, null, new ReadOnlyMemory<int>([0, 1, 0]), default);
        }
        return path;
    }

    [Test]
    public async Task ReadsFlatColumnsAsStringsAcrossRowGroups()
    {
        string path = await WriteParquet("data.parquet", rowGroups: 2);
        var table = TextTable.Read(path);
        Assert.That(table.Columns, Is.EqualTo(new[] { "sentence", "label", "score", "ok" }), "list columns are left out");
        Assert.That(table.Rows, Has.Count.EqualTo(4));
        Assert.That(table.Rows.Select(r => r.Values["sentence"]), Is.EqualTo(new[] { "héllo 🙂 0", "two, \"quoted\"", "héllo 🙂 1", "two, \"quoted\"" }));
        Assert.That(table.Rows[0].Values["label"], Is.EqualTo("1"));
        Assert.That(table.Rows[0].Values["score"], Is.EqualTo("0.25"));
        Assert.That(table.Rows[1].Values["score"], Is.Null);
        Assert.That(table.Rows[0].Values["ok"], Is.EqualTo("true"));
        Assert.That(table.Rows.Select(r => r.Number), Is.EqualTo(new[] { 1, 2, 3, 4 }));
    }

    [Test]
    public async Task NullInAUsedColumnIsABadRowNamingTheRow()
    {
        string path = await WriteParquet("data.parquet", rowGroups: 1);
        var table = TextTable.Read(path);
        var mapping = new ColumnMapping { InputColumn = "label", TargetColumn = "score" };
        var tokenizer = new SymbolTokenizer(new Dictionary<string, int> { ["0"] = 0, ["1"] = 1, ["0.25"] = 2 }, SpecialTokenNames.None, "vocab.json");
        var e = Assert.Throws<DataException>(() => ExampleBuilder.Build(table, mapping, tokenizer, new TokenizeOptions { MaxTokens = 100 }));
        Assert.That(e!.Message, Does.StartWith($"{path}, row 2:").And.Contain("\"score\" is null"));
    }

    [Test]
    public void GarbageFileNamesTheFile()
    {
        string path = WriteBytes("data.parquet", "PAR1 this is not parquet at all PAR1"u8.ToArray());
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("not a readable Parquet file"));
    }

    [Test]
    public async Task TruncatedFileNamesTheFile()
    {
        string path = await WriteParquet("data.parquet", rowGroups: 1);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<DataException>(() => TextTable.Read(path));
        Assert.That(e!.Message, Does.StartWith(path).And.Contain("not a readable Parquet file"));
    }
}
