using System.Text.Json;
using SoftPrompt.Tests.Tuning;

namespace SoftPrompt.Tests.Cli;

/// <summary>A temp directory per test, and the demo data as text tables for the text-data paths.</summary>
public abstract class CliScratch
{
    protected string Scratch { get; private set; } = "";
    protected static string Demo => DemoModel.Directory;
    protected static string DemoData(string file) => DemoModel.Data(file);

    [SetUp]
    public void CreateScratch() => Scratch = Directory.CreateTempSubdirectory("softprompt-cli-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(Scratch, recursive: true);

    protected string In(string name) => Path.Combine(Scratch, name);

    protected static JsonElement ParseJson(string stdout)
    {
        using var document = JsonDocument.Parse(stdout);
        return document.RootElement.Clone();
    }

    /// <summary>
    /// The demo's majority task as a CSV classification table ("symbols","majority") restricted to rows whose
    /// answer is one of <paramref name="classes"/>: the --template "{symbols} &lt;sep&gt;" rebuilds the pre-tokenized input.
    /// </summary>
    protected string MajorityCsv(string split, params string[] classes)
    {
        var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(Demo, "vocab.json")))!.ToDictionary(p => p.Value, p => p.Key);
        var lines = new List<string> { "symbols,majority" };
        foreach (string line in File.ReadLines(DemoData($"majority.{split}.jsonl")))
        {
            using var row = JsonDocument.Parse(line);
            var input = row.RootElement.GetProperty("input_ids").EnumerateArray().Select(e => vocab[e.GetInt32()]).ToList();
            string answer = vocab[row.RootElement.GetProperty("target_ids")[0].GetInt32()];
            if (classes.Contains(answer)) lines.Add($"{string.Join(' ', input.Take(input.Count - 1))},{answer}");
        }
        string path = In($"majority.{split}.csv");
        File.WriteAllLines(path, lines);
        return path;
    }

    /// <summary>Copy and reverse dev rows alternating in one pre-tokenized file, each naming its task.</summary>
    protected string MixedCopyReverse(int perTask)
    {
        var lines = new List<string>();
        var copy = File.ReadLines(DemoData("copy.dev.jsonl")).Take(perTask).ToList();
        var reverse = File.ReadLines(DemoData("reverse.dev.jsonl")).Take(perTask).ToList();
        for (int i = 0; i < perTask; i++)
        {
            lines.Add(copy[i].Replace("{", "{\"task\":\"copy\","));
            lines.Add(reverse[i].Replace("{", "{\"task\":\"reverse\","));
        }
        string path = In("mixed.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }
}
