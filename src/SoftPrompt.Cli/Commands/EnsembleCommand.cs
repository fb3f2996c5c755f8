using System.CommandLine;
using System.Text.Json.Nodes;
using SoftPrompt.Cli.Output;
using SoftPrompt.Cli.Training;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `softprompt ensemble`: score K prompts of one task together. Each example runs once as K rows (one per prompt) in a
/// single forward pass; reports each prompt's score, the best single prompt, the majority vote and the mean label
/// probability (rank classification with --labels; greedy generation with exact match otherwise). Under mpirun or srun
/// each process scores a contiguous share of the rows; rank 0 prints the results of all of them.
/// </summary>
internal static class EnsembleCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face checkpoint directory", Required = true };
        var prompts = new Option<string[]>("--prompts")
        {
            Description = "The ensemble's prompt files (same model; lengths may differ)",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = true,
        };
        var data = new Option<string>("--data") { Description = "Dev data with gold answers: pre-tokenized JSONL, or text .jsonl/.csv/.tsv/.parquet with the column flags", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "Rows per batch (whole examples: K prompts × labels rows each)", DefaultValueFactory = _ => 32 };
        var json = new Option<bool>("--json") { Description = "Print the results as one JSON document" };
        var engineFlags = new EngineFlags();
        var columns = new DataOptions();
        var command = new Command("ensemble", "Score several prompts of one task as an ensemble (majority vote, mean probability)") { model, prompts, data, batchSize, json };
        engineFlags.AddTo(command);
        foreach (var option in columns.All) command.Options.Add(option);
        command.SetAction(r => CliErrors.Run(() => GroupRun.Run(group => Run(r.GetValue(model)!, r.GetValue(prompts) ?? [], r.GetValue(data)!, engineFlags.ReadDevice(r),
            r.GetValue(batchSize), r.GetValue(json), engineFlags.Read(r), columns.Read(r), group))));
        return command;
    }

    private static int Run(string modelDirectory, string[] promptPaths, string dataPath, string device, int batchSize, bool json, EngineOptions options, DataRequest request,
        IProcessGroup group)
    {
        TextWriter human = group.Rank != 0 ? TextWriter.Null : json ? Console.Error : Console.Out;
        using var loaded = EngineFactory.Open(modelDirectory, device, options);
        var engine = loaded.Engine;
        var prompts = PromptSet.Load(promptPaths, engine.EmbeddingSize, loaded.Fingerprint);
        engine.LoadPrompts(prompts.Values, prompts.Layout);
        ITextTokenizer? tokenizer = null;
        ITextTokenizer Tokenizer() => tokenizer ??= TokenizerLoader.Load(loaded.Directory);
        var dataset = DataOptions.Load(dataPath, request, Tokenizer, loaded, prompts.LongestLength, human);

        var result = Evaluate(engine, dataset, DataOptions.IsText(dataPath) ? DataOptions.TryTokenizer(Tokenizer)?.EosId : null, batchSize, group);
        human.WriteLine($"ensemble of {prompts.Count} prompts ({prompts.LengthText}) on {dataPath}: {dataset.Examples.Count} rows, " +
            (result.IsClassification ? $"rank classification over {dataset.Classification!.LabelTexts.Count} labels" : "exact match of greedy decoding") +
            $", device {engine.DeviceName}");
        EnsembleReport.WriteTable(human, result, promptPaths);
        if (json && group.Rank == 0)
        {
            var document = EnsembleReport.Json(result, [.. promptPaths.Select(Path.GetFullPath)]);
            document["model"] = loaded.Directory;
            document["data"] = Path.GetFullPath(dataPath);
            document["skipped_rows"] = dataset.SkippedRows;
            document["device"] = engine.DeviceName;
            JsonOutput.Write(document);
        }
        return 0;
    }

    /// <param name="stopToken">Generation: the tokenizer's EOS for text data; null infers it from pre-tokenized targets.</param>
    internal static EnsembleEvaluation Evaluate(IPromptEngine engine, TokenizedDataset dataset, int? stopToken, int batchSize, IProcessGroup processes) =>
        dataset.Classification is { } task
            ? EnsembleEvaluator.Classify(engine, dataset.Examples, task, batchSize, processes)
            : EnsembleEvaluator.Generate(engine, dataset.Examples, stopToken, batchSize, processes);
}
