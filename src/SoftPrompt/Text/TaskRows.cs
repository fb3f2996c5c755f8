using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Text;

/// <summary>Which columns of a multi-task file say the task, the input and (optionally) the gold answer.</summary>
/// <param name="TargetColumn">Optional: the gold answer (a class value, or the text to generate) to score predictions against.</param>
public sealed record TaskColumns(string TaskColumn, string? InputColumn, InputTemplate? Template, string? TargetColumn);

/// <summary>
/// One row of a multi-task file (<see cref="Number"/> as <see cref="TextRow.Number"/> counts it): the task it names (and so the prompt it runs with) and its input ids.
/// <see cref="Gold"/> is the target column's raw value; <see cref="GoldTokens"/> the gold answer as ids (pre-tokenized
/// target_ids, or the target text tokenized as training targets are), when the file has them.
/// </summary>
public sealed record TaskRow(int Number, string Where, string Task, int[] Input, string? Gold, int[]? GoldTokens);

public sealed record TaskRows(IReadOnlyList<TaskRow> Rows, int SkippedRows, int TruncatedRows, IReadOnlyList<string> SkipReasons, bool Pretokenized);

/// <summary>
/// Reads a data file whose rows each name their task (--task-column), for serving several prompts at once. Pre-tokenized
/// JSONL rows give input_ids (target_ids optional); text rows (JSONL, CSV, TSV, Parquet) give an input column or a
/// template, tokenized as training inputs are. Inputs longer than their task leaves room for are cut from the start,
/// as <see cref="TokenizeOptions"/> describes.
/// </summary>
public static class TaskRowReader
{
    /// <param name="tokenizer">Needed for text rows, and for a target column's text.</param>
    /// <param name="inputRoom">Per task: the most input tokens a row may keep (n_positions − prompt length − the room its
    /// answer needs). A row naming a task not listed here is a bad row.</param>
    /// <param name="classificationTasks">Tasks whose target column holds class values, which are kept as text, not tokenized.</param>
    public static TaskRows Read(string path, TaskColumns columns, ITextTokenizer? tokenizer, TokenizeOptions options, IReadOnlyDictionary<string, int> inputRoom,
        IReadOnlySet<string>? classificationTasks = null)
    {
        bool pretokenized = PretokenizedJsonl.IsPretokenized(path);
        if (pretokenized && (columns.InputColumn is not null || columns.Template is not null))
            throw new DataException($"{path}: the rows are pre-tokenized (input_ids), so `ColumnMapping.InputColumn` and `ColumnMapping.Template` do not apply; drop them or use a text data file.");
        if (!pretokenized && (columns.InputColumn is null) == (columns.Template is null))
            throw new DataException($"{path}: give exactly one of `ColumnMapping.InputColumn` and `ColumnMapping.Template` to say what each row's input is.");
        if (!pretokenized && tokenizer is null)
            throw new DataException($"{path}: text data needs a tokenizer, but none was found beside the model; add the tokenizer files or supply pre-tokenized JSONL (input_ids).");

        var table = TextTable.Read(path, options.SkipBadRows);
        if (!table.Columns.Contains(columns.TaskColumn)) throw table.MissingColumn(columns.TaskColumn, "the task each row belongs to (`taskColumn`)");
        var bad = new BadRows(options.SkipBadRows);
        bad.Add(table.SkippedRows, table.SkipReasons);
        var rows = new List<TaskRow>(table.Rows.Count);
        int truncated = 0;
        string known = string.Join(", ", inputRoom.Keys.Select(k => $"\"{k}\""));
        foreach (var row in table.Rows)
        {
            string where = row.Where(path);
            try
            {
                string task = ExampleBuilder.Value(row, columns.TaskColumn, where).Trim();
                if (!inputRoom.TryGetValue(task, out int room))
                    throw new DataException($"{where}: task \"{task}\" has no prompt (prompts given for {known}); add its prompt (`prompts` {task}=FILE) or fix the row.");
                int[] input = pretokenized ? Ids(row, "input_ids", where, options, required: true)! : Encode(row, columns, where, tokenizer!, options);
                if (room <= 0) throw new DataException($"{where}: task \"{task}\" leaves no room for input within n_positions; use a shorter prompt or answer.");
                if (input.Length > room)
                {
                    input = ExampleBuilder.KeepEnd(input, room, options.AddBos);
                    truncated++;
                }
                string? gold = columns.TargetColumn is null ? null : ExampleBuilder.Value(row, columns.TargetColumn, where);
                int[]? goldTokens = pretokenized ? Ids(row, "target_ids", where, options, required: false)
                    : gold is null || classificationTasks?.Contains(task) == true ? null : ExampleBuilder.TargetTokens(gold, tokenizer!, options);
                rows.Add(new TaskRow(row.Number, where, task, input, gold, goldTokens));
            }
            catch (DataException e)
            {
                bad.Report(e.Message.StartsWith(where, StringComparison.Ordinal) ? e.Message : $"{where}: {e.Message}", e);
            }
        }
        if (rows.Count == 0)
            throw new DataException($"{path}: no usable rows ({bad.Count} skipped{(bad.Reasons.Count > 0 ? $"; first: {bad.Reasons[0]}" : "")}).");
        return new TaskRows(rows, bad.Count, truncated, bad.Reasons, pretokenized);
    }

    private static int[] Encode(TextRow row, TaskColumns columns, string where, ITextTokenizer tokenizer, TokenizeOptions options)
    {
        string text = columns.Template is { } template
            ? template.Render(c => ExampleBuilder.Value(row, c, where))
            : ExampleBuilder.Value(row, columns.InputColumn!, where);
        int[] ids = ExampleBuilder.InputTokens(text, tokenizer, options);
        CheckVocabulary(ids, where, options);
        return ids;
    }

    // JsonlTable keeps arrays as their raw JSON text.
    private static int[]? Ids(TextRow row, string column, string where, TokenizeOptions options, bool required)
    {
        if (!row.Values.TryGetValue(column, out string? raw) || raw is null)
            return required ? throw new DataException($"{where}: missing \"{column}\".") : null;
        int[] ids;
        try
        {
            using var document = StrictJson.Parse(raw);
            if (document.RootElement.ValueKind != JsonValueKind.Array) throw new DataException($"{where}: \"{column}\" must be an array of token ids.");
            ids = new int[document.RootElement.GetArrayLength()];
            int i = 0;
            foreach (var item in document.RootElement.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]) || ids[i] < 0)
                    throw new DataException($"{where}: \"{column}\"[{i}] is not a token id.");
                i++;
            }
        }
        catch (JsonException e)
        {
            throw new DataException($"{where}: \"{column}\" must be an array of token ids ({e.Message}).", e);
        }
        CheckVocabulary(ids, where, options);
        return ids;
    }

    private static void CheckVocabulary(int[] ids, string where, TokenizeOptions options)
    {
        if (options.ModelVocabSize is not int vocab) return;
        foreach (int id in ids)
            if (id >= vocab) throw new DataException($"{where}: token id {id} is outside the model's vocabulary [0, {vocab}).");
    }
}
