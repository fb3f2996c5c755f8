using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli.Output;
using SoftPrompt.Cli.Training;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `softprompt eval`: score a prompt on a data file. With --labels, rank classification (every label scored by its
/// summed log-likelihood; accuracy, macro-F1, per-class scores, confusion matrix); always exact match of greedy
/// decoding (teacher-forced: every target token is the argmax), teacher-forced token accuracy and the mean loss.
/// Under mpirun or srun each process scores a contiguous share of the rows; rank 0 prints the metrics of all of them.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face checkpoint directory", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Prompt file (.safetensors) trained for this model", Required = true };
        var data = new Option<string>("--data") { Description = "Pre-tokenized JSONL, or text .jsonl/.csv/.tsv/.parquet with the column flags", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "Rows per batch (rank classification uses one row per example and label)", DefaultValueFactory = _ => 32 };
        var json = new Option<bool>("--json") { Description = "Print the results as one JSON document" };
        var engineFlags = new EngineFlags();
        var columns = new DataOptions();
        var command = new Command("eval", "Score a prompt on a data file") { model, prompt, data, batchSize, json };
        engineFlags.AddTo(command);
        foreach (var option in columns.All) command.Options.Add(option);
        command.SetAction(r => CliErrors.Run(() => GroupRun.Run(group => Run(r.GetValue(model)!, r.GetValue(prompt)!, r.GetValue(data)!, engineFlags.ReadDevice(r),
            r.GetValue(batchSize), r.GetValue(json), engineFlags.Read(r), columns.Read(r), group))));
        return command;
    }

    private static int Run(string modelDirectory, string promptPath, string dataPath, string device, int batchSize, bool json, EngineOptions options, DataRequest request,
        IProcessGroup group)
    {
        var inv = CultureInfo.InvariantCulture;
        bool writer = group.Rank == 0;
        TextWriter human = !writer ? TextWriter.Null : json ? Console.Error : Console.Out;
        using var loaded = EngineFactory.Open(modelDirectory, device, options);
        var engine = loaded.Engine;
        var prompt = PromptFile.Load(promptPath);
        prompt.CheckBelongsTo(promptPath, engine.EmbeddingSize, loaded.Fingerprint);
        engine.LoadPrompts(prompt.Values, 1, prompt.Length);
        var dataset = DataOptions.Load(dataPath, request, () => TokenizerLoader.Load(loaded.Directory), loaded, prompt.Length, human);

        var document = new JsonObject
        {
            ["model"] = loaded.Directory,
            ["prompt"] = Path.GetFullPath(promptPath),
            ["data"] = Path.GetFullPath(dataPath),
            ["rows"] = dataset.Examples.Count,
            ["skipped_rows"] = dataset.SkippedRows,
            ["device"] = engine.DeviceName,
        };
        string step = prompt.Metadata.TryGetValue("step", out var s) ? $", step {s}" : "";
        if (dataset.Classification is { } task)
        {
            var result = RankClassifier.Evaluate(engine, dataset.Examples, task, batchSize, processes: group);
            var m = result.Metrics;
            var metrics = new Dictionary<string, double>
            {
                ["accuracy"] = m.Accuracy, ["macro_f1"] = m.MacroF1, ["exact_match"] = result.ExactMatch,
                ["token_accuracy"] = result.TokenAccuracy, ["loss"] = result.MeanLoss,
            };
            document["task"] = "classification";
            document["labels"] = new JsonArray([.. task.LabelTexts.Select(t => JsonValue.Create(t))]);
            document["metrics"] = JsonOutput.Metrics(metrics);
            document["per_class"] = new JsonArray([.. m.PerClass.Select(c => new JsonObject
            {
                ["label"] = c.Label, ["precision"] = c.Precision, ["recall"] = c.Recall, ["f1"] = c.F1, ["support"] = c.Support, ["predicted"] = c.Predicted,
            })]);
            document["confusion"] = new JsonArray([.. m.Confusion.Select(row => new JsonArray([.. row.Select(n => JsonValue.Create(n))]))]);

            human.WriteLine($"{promptPath} (P={prompt.Length}{step}) on {dataPath}: {dataset.Examples.Count} rows, rank classification over {task.LabelTexts.Count} labels");
            human.WriteLine(string.Create(inv, $"accuracy {m.Accuracy:F4}  macro-F1 {m.MacroF1:F4}  exact match {result.ExactMatch:F4}  token accuracy {result.TokenAccuracy:F4}  loss {result.MeanLoss:F4}"));
            int labelWidth = Math.Max(5, task.LabelTexts.Max(t => t.Length));
            human.WriteLine($"{"label".PadRight(labelWidth)}  precision  recall      f1  support  predicted");
            foreach (var c in m.PerClass)
                human.WriteLine(string.Create(inv, $"{c.Label.PadRight(labelWidth)}  {c.Precision,9:F4}  {c.Recall,6:F4}  {c.F1,6:F4}  {c.Support,7}  {c.Predicted,9}"));
            human.WriteLine("confusion (rows: gold, columns: predicted)");
            foreach (var (row, label) in m.Confusion.Zip(task.LabelTexts))
                human.WriteLine($"{label.PadRight(labelWidth)}  {string.Join(" ", row.Select(n => n.ToString(inv).PadLeft(6)))}");
        }
        else
        {
            var result = Evaluator.ExactMatch(engine, dataset.Examples, batchSize, processes: group);
            var generated = GenerationMetrics.Score(engine, dataset.Examples, StopToken(loaded.Directory), batchSize, group);
            document["task"] = "generation";
            document["metrics"] = JsonOutput.Metrics(new Dictionary<string, double>
            {
                ["exact_match"] = generated.ExactMatch, ["token_f1"] = generated.TokenF1,
                ["teacher_forced_exact_match"] = result.Accuracy, ["token_accuracy"] = result.TokenAccuracy, ["loss"] = result.MeanLoss,
            });
            human.WriteLine($"{promptPath} (P={prompt.Length}{step}) on {dataPath}: {dataset.Examples.Count} rows");
            human.WriteLine(string.Create(inv, $"exact match {generated.ExactMatch:F4}  token F1 {generated.TokenF1:F4}  (greedy decoding)"));
            human.WriteLine(string.Create(inv, $"teacher-forced: exact match {result.Accuracy:F4}  token accuracy {result.TokenAccuracy:F4}  loss {result.MeanLoss:F4}"));
        }
        if (json && writer) JsonOutput.Write(document);
        return 0;
    }

    /// <summary>The tokenizer's end-of-sequence id, when the model directory has a tokenizer that declares one.</summary>
    private static int? StopToken(string modelDirectory)
    {
        try { return TokenizerLoader.Load(modelDirectory).EosId; }
        catch (Exception e) when (e is DataException or CheckpointException or IOException) { return null; }
    }
}
