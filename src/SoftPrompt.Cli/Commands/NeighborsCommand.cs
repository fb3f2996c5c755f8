using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SoftPrompt.Checkpoints;
using SoftPrompt.Models;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>`softprompt neighbors`: nearest vocabulary tokens of every prompt vector (the paper's interpretability analysis).</summary>
internal static class NeighborsCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Required = true, Description = "Hugging Face checkpoint directory" };
        var prompt = new Option<string>("--prompt") { Required = true, Description = "Prompt file (.safetensors)" };
        var k = new Option<int>("--k") { DefaultValueFactory = _ => 5, Description = "Neighbours per position" }.Positive();
        var labels = new Option<string?>("--labels") { Description = "Comma-separated verbalizer label texts to flag among the neighbours" };
        var json = new Option<bool>("--json");
        var command = new Command("neighbors", "Nearest vocabulary tokens of each prompt vector, by cosine similarity") { model, prompt, k, labels, json };
        command.SetAction(r => CliErrors.Run(() => Run(r.GetValue(model)!, r.GetValue(prompt)!, r.GetValue(k), r.GetValue(labels), r.GetValue(json))));
        return command;
    }

    private static int Run(string modelDir, string promptPath, int k, string? labelList, bool json)
    {
        var table = TokenEmbeddingTable.Load(modelDir);
        var file = PromptFile.Load(promptPath);
        file.CheckBelongsTo(promptPath, table.Config.Embedding, table.Fingerprint);
        ITextTokenizer? tokenizer = TryTokenizer(modelDir);
        // Every row is searched, also those the tokenizer cannot spell (T5's sentinels <extra_id_*> past spiece.model's
        // 32000 pieces, and its unused rows up to 32128): they print as <id N>.
        string Text(int id) => tokenizer is not null && id < tokenizer.VocabSize ? tokenizer.TokenText(id) : $"<id {id}>";
        var labelIds = new HashSet<int>();
        if (labelList is not null)
        {
            if (tokenizer is null) throw new ArgumentException($"--labels needs a tokenizer in {modelDir} (vocab.json + merges.txt, tokenizer.json, a SentencePiece model such as T5's spiece.model, or a symbol vocab.json).");
            foreach (string label in labelList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                labelIds.UnionWith(tokenizer.Encode(label));
        }
        var neighbors = PromptNeighbors.Find(file.Values, table.Values, file.Width, k);
        var inv = CultureInfo.InvariantCulture;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(neighbors.Select(n => new
            {
                position = n.Position,
                cohesion = n.Cohesion,
                has_label = n.Nearest.Any(x => labelIds.Contains(x.TokenId)),
                nearest = n.Nearest.Select(x => new { id = x.TokenId, token = Text(x.TokenId), cosine = x.Cosine }),
            })));
            return 0;
        }
        Console.WriteLine($"{promptPath}: {file.Length} vectors × {file.Width}; {k} nearest of the {table.Config.VocabSize} rows of the {table.Config.Family.Name} embedding table by cosine similarity");
        foreach (var n in neighbors)
        {
            string tokens = string.Join("  ", n.Nearest.Select(x => string.Create(inv, $"{Text(x.TokenId)} ({x.Cosine:F2})")));
            string flag = n.Nearest.Any(x => labelIds.Contains(x.TokenId)) ? "  [label]" : "";
            Console.WriteLine(string.Create(inv, $"{n.Position,4}  cohesion {n.Cohesion:F2}  {tokens}{flag}"));
        }
        Console.WriteLine(string.Create(inv, $"mean cohesion {neighbors.Average(n => n.Cohesion):F3}; positions near a label: {neighbors.Count(n => n.Nearest.Any(x => labelIds.Contains(x.TokenId)))}"));
        return 0;
    }

    private static ITextTokenizer? TryTokenizer(string modelDir)
    {
        try { return TokenizerLoader.Load(modelDir); }
        catch (Exception e) when (e is DataException or CheckpointException or IOException) { return null; }
    }
}
