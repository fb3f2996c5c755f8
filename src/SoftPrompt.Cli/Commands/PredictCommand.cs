using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Cli.Files;
using SoftPrompt.Cli.Output;
using SoftPrompt.Cli.Serving;
using SoftPrompt.Cli.Training;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `softprompt predict`: one frozen model answers rows of several tasks, each row with its task's prompt, rows of
/// different tasks sharing batches. Writes one JSON line per row: task, prediction (a label by rank classification when
/// the task has labels, else the greedy answer as text, or as ids for pre-tokenized data) and its log-likelihood score.
/// Under mpirun or srun each process answers a contiguous share of the rows; rank 0 writes all of them, in file order.
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face checkpoint directory", Required = true };
        var prompts = new Option<string[]>("--prompt")
        {
            Description = "TASK=FILE: the prompt that serves the rows of TASK; repeat for every task (prompts may differ in length)",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var data = new Option<string>("--data") { Description = "Rows naming their task: pre-tokenized JSONL (input_ids, target_ids optional) or text .jsonl/.csv/.tsv/.parquet", Required = true };
        var output = new Option<string>("--out") { Description = "Predictions as JSON Lines, one per row in file order", Required = true };
        var taskColumn = new Option<string>("--task-column") { Description = "The column naming each row's task", DefaultValueFactory = _ => "task" };
        var inputColumn = new Option<string?>("--input-column") { Description = "Text data: the column read as the input" };
        var template = new Option<string?>("--template") { Description = "Text data: build the input from columns, e.g. \"review: {text}\\nsentiment:\"" };
        var targetColumn = new Option<string?>("--target-column") { Description = "Optional gold answers (class values or target text): each line then says whether the prediction is correct" };
        var labels = new Option<string[]>("--labels")
        {
            Description = "Rank-classify with these labels: value=text,… for every task, or TASK=value=text,… for one task (repeatable); tasks without labels generate",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var targetPrefix = new Option<string?>("--target-prefix") { Description = "Text put before every label or target, as in training (e.g. \" \")" };
        var skipBadRows = new Option<bool>("--skip-bad-rows") { Description = "Skip and count malformed rows instead of stopping at the first" };
        var maxNewTokens = new Option<int>("--max-new-tokens") { Description = "Generation: most tokens to generate per row (fewer when n_positions leaves less room)", DefaultValueFactory = _ => 32 };
        var stopToken = new Option<int?>("--stop-token") { Description = "Generation: stop at this token id (default: the tokenizer's EOS)" };
        var stopStrings = new Option<string[]>("--stop")
        {
            Description = "Generation: end a row once its generated text contains STRING (repeatable; the input never stops it); the stop string and what follows are cut from a text answer",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var temperature = new Option<float?>("--temperature") { Description = "Generation: sample instead of greedy decoding, logits divided by this" };
        var topK = new Option<int>("--top-k") { Description = "Sampling: draw among the K most likely tokens (0: all)" };
        var topP = new Option<float>("--top-p") { Description = "Sampling: draw among the fewest tokens whose probability reaches P", DefaultValueFactory = _ => 1f };
        var seed = new Option<int>("--seed") { Description = "Sampling: row i draws from a generator seeded by (seed, i), whatever the batch" };
        var batchSize = new Option<int>("--batch-size") { Description = "Rows per batch (rows of all tasks mixed)", DefaultValueFactory = _ => 32 };
        var engineFlags = new EngineFlags();
        var json = new Option<bool>("--json") { Description = "Print a JSON summary on stdout" };
        var command = new Command("predict", "Answer rows of several tasks with their prompts in shared batches")
        {
            model, prompts, data, output, taskColumn, inputColumn, template, targetColumn, labels, targetPrefix, skipBadRows, maxNewTokens, stopToken,
            stopStrings, temperature, topK, topP, seed, batchSize, json,
        };
        engineFlags.AddTo(command);
        command.SetAction(r => CliErrors.Run(() => GroupRun.Run(group => Run(new PredictPlan(r.GetValue(model)!, TaskSpecs.Parse(r.GetValue(prompts) ?? [], r.GetValue(labels) ?? []),
            r.GetValue(data)!, r.GetValue(output)!,
            new TaskColumns(r.GetValue(taskColumn)!, r.GetValue(inputColumn), r.GetValue(template) is string t ? InputTemplate.Parse(t) : null, r.GetValue(targetColumn)),
            r.GetValue(targetPrefix) ?? "", r.GetValue(skipBadRows), r.GetValue(maxNewTokens), r.GetValue(stopToken), r.GetValue(stopStrings) ?? [], engineFlags.ReadDevice(r),
            r.GetValue(batchSize), engineFlags.Read(r), r.GetValue(json), SamplingOf(r.GetValue(temperature), r.GetValue(topK), r.GetValue(topP), r.GetValue(seed))), group))));
        return command;
    }

    private sealed record PredictPlan(string Model, TaskSpecs Tasks, string Data, string Output, TaskColumns Columns, string TargetPrefix, bool SkipBadRows,
        int MaxNewTokens, int? StopToken, string[] StopStrings, string Device, int BatchSize, EngineOptions Engine, bool Json, Sampling? Sampling);

    /// <summary>Sampling when any of its flags is given (temperature 1 unless set), greedy decoding otherwise.</summary>
    private static Sampling? SamplingOf(float? temperature, int topK, float topP, int seed)
    {
        if (temperature is null && topK == 0 && topP == 1f) return null;
        var sampling = new Sampling(temperature ?? 1f, topK, topP, seed);
        sampling.Validate();
        return sampling;
    }

    private static int Run(PredictPlan plan, IProcessGroup group)
    {
        var inv = CultureInfo.InvariantCulture;
        TextWriter human = group.Rank != 0 ? TextWriter.Null : plan.Json ? Console.Error : Console.Out;
        if (plan.MaxNewTokens <= 0) throw new ArgumentException($"--max-new-tokens must be positive, got {plan.MaxNewTokens}.");
        var files = new RunFiles().InputDirectory("--model", plan.Model).Input("--data", plan.Data).Output("--out", plan.Output);
        foreach (string prompt in plan.Tasks.PromptPaths) files.Input("--prompt", prompt);
        files.Check();
        using var loaded = EngineFactory.Open(plan.Model, plan.Device, plan.Engine);
        var engine = loaded.Engine;
        var specs = plan.Tasks;
        var prompts = PromptSet.Load(specs.PromptPaths, engine.EmbeddingSize, loaded.Fingerprint);
        engine.LoadPrompts(prompts.Values, prompts.Layout);

        ITextTokenizer? tokenizer = null;
        ITextTokenizer Tokenizer() => tokenizer ??= TokenizerLoader.Load(loaded.Directory);
        int maxTokens = engine.MaxPositions - prompts.LongestLength;
        if (maxTokens <= 1) throw new ArgumentException($"Prompts of up to {prompts.LongestLength} vectors leave no room for tokens within n_positions {engine.MaxPositions}.");
        var options = TokenizeOptions.For(loaded.Family, loaded.Directory, maxTokens) with
        {
            SkipBadRows = plan.SkipBadRows,
            TargetPrefix = plan.TargetPrefix,
            ModelVocabSize = engine.VocabSize,
        };

        // Classification inputs keep room for their longest label; generation inputs for at least one new token.
        var served = new List<ServedTask>();
        var room = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int t = 0; t < specs.Tasks.Count; t++)
        {
            string name = specs.Tasks[t];
            int[][]? labelTokens = specs.Labels.TryGetValue(name, out var verbalizer) ? ExampleBuilder.LabelTokens(verbalizer, Tokenizer(), options) : null;
            served.Add(new ServedTask(name, t, labelTokens));
            room[name] = maxTokens - (labelTokens is null ? 1 : labelTokens.Max(l => l.Length));
        }
        bool needsTokenizer = DataOptions.IsText(plan.Data) || plan.Columns.TargetColumn is not null;
        var table = TaskRowReader.Read(plan.Data, plan.Columns, needsTokenizer ? Tokenizer() : DataOptions.TryTokenizer(Tokenizer), options, room,
            specs.Labels.Keys.ToHashSet(StringComparer.Ordinal));
        if (table.SkippedRows > 0) human.WriteLine($"{plan.Data}: skipped {table.SkippedRows} bad rows" + (table.SkipReasons.Count > 0 ? $" (first: {table.SkipReasons[0]})" : ""));
        if (table.TruncatedRows > 0) human.WriteLine($"{plan.Data}: truncated the input of {table.TruncatedRows} rows to leave room for the answer");

        int? stop = plan.StopToken ?? DataOptions.TryTokenizer(Tokenizer)?.EosId;
        var taskIndex = specs.Tasks.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i, StringComparer.Ordinal);
        var rows = table.Rows.Select(r => new ServedRow(taskIndex[r.Task], r.Input)).ToArray();
        var stopStrings = plan.StopStrings.Length == 0 ? null : new StopStrings(plan.StopStrings, Tokenizer());
        stopStrings?.Validate();
        var predictions = MixedPredictor.Predict(engine, served, rows, plan.MaxNewTokens, stop, plan.BatchSize, plan.Sampling, stopStrings, group);
        if (group.Rank != 0) return 0;

        var perTask = specs.Tasks.ToDictionary(t => t, _ => (Rows: 0, Graded: 0, Correct: 0), StringComparer.Ordinal);
        var lines = new StringBuilder();
        for (int i = 0; i < rows.Length; i++)
        {
            var row = table.Rows[i];
            var p = predictions[i];
            var line = Line(row, p, specs.Labels.GetValueOrDefault(row.Task), table.Pretokenized, tokenizer, stop, stopStrings, plan.TargetPrefix);
            var counts = perTask[row.Task];
            counts.Rows++;
            if (line["correct"] is JsonValue correct)
            {
                counts.Graded++;
                if (correct.GetValue<bool>()) counts.Correct++;
            }
            perTask[row.Task] = counts;
            lines.Append(line.ToJsonString()).Append('\n');
        }
        byte[] text = Encoding.UTF8.GetBytes(lines.ToString());
        AtomicFile.Write(plan.Output, stream => stream.Write(text));

        human.WriteLine($"{rows.Length} rows of {specs.Tasks.Count} tasks, prompts of {prompts.LengthText} in shared batches on {engine.DeviceName} → {plan.Output}");
        var summary = new JsonArray();
        foreach (var (task, c) in perTask)
        {
            string kind = specs.Labels.ContainsKey(task) ? "rank classification" : "generation";
            string accuracy = c.Graded > 0 ? string.Create(inv, $", accuracy {(double)c.Correct / c.Graded:F4} on {c.Graded} graded rows") : "";
            human.WriteLine($"  {task}: {c.Rows} rows, {kind}{accuracy}");
            summary.Add(new JsonObject
            {
                ["task"] = task, ["prompt"] = specs.PromptPaths[taskIndex[task]], ["kind"] = kind, ["rows"] = c.Rows,
                ["accuracy"] = c.Graded > 0 ? JsonOutput.Number((double)c.Correct / c.Graded) : null,
            });
        }
        if (plan.Json)
            JsonOutput.Write(new JsonObject { ["out"] = plan.Output, ["rows"] = rows.Length, ["skipped_rows"] = table.SkippedRows, ["device"] = engine.DeviceName, ["tasks"] = summary });
        return 0;
    }

    private static JsonObject Line(TaskRow row, Prediction p, Verbalizer? labels, bool pretokenized, ITextTokenizer? tokenizer, int? stop, StopStrings? stopStrings, string targetPrefix)
    {
        var line = new JsonObject { ["row"] = row.Number, ["task"] = row.Task };
        if (labels is not null)
        {
            line["prediction"] = labels.Texts[p.Label];
            line["label"] = labels.Values[p.Label];
            line["score"] = JsonOutput.Number(p.Score);
            line["probability"] = JsonOutput.Number(p.Probability);
            if (row.Gold is not null) line["correct"] = labels.IndexOf(row.Gold) == p.Label;
        }
        else
        {
            line["prediction"] = pretokenized ? Ids(p.Tokens) : Text(p.Tokens, tokenizer!, stop, stopStrings, targetPrefix);
            line["tokens"] = Ids(p.Tokens);
            line["score"] = JsonOutput.Number(p.Score);
            if (row.GoldTokens is not null) line["correct"] = RowScorer.Matches(p.Tokens, row.GoldTokens);
        }
        if (row.Gold is not null) line["gold"] = row.Gold;
        else if (row.GoldTokens is not null) line["gold"] = Ids(row.GoldTokens);
        return line;
    }

    private static JsonArray Ids(int[] ids) => new([.. ids.Select(id => JsonValue.Create(id))]);

    // The answer as text: without the stop token or the stop string and what follows, and without the target prefix
    // training put before every target.
    private static string Text(int[] tokens, ITextTokenizer tokenizer, int? stop, StopStrings? stopStrings, string targetPrefix)
    {
        var ids = tokens.AsSpan();
        if (stop is int s && ids.Length > 0 && ids[^1] == s) ids = ids[..^1];
        string text = tokenizer.Decode(ids);
        if (stopStrings is not null) text = stopStrings.Cut(text);
        return targetPrefix.Length > 0 && text.StartsWith(targetPrefix, StringComparison.Ordinal) ? text[targetPrefix.Length..] : text;
    }
}
