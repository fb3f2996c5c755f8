namespace SoftPrompt.Text;

/// <summary>Turns a <see cref="TextTable"/> into <see cref="TokenizedExample"/>s: map columns, verbalize, tokenize, truncate (see <see cref="TokenizeOptions"/>).</summary>
public static class ExampleBuilder
{
    public static TokenizedDataset Build(TextTable table, ColumnMapping mapping, ITextTokenizer tokenizer, TokenizeOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxTokens);
        foreach (var (column, role) in mapping.RequiredColumns())
            if (!table.Columns.Contains(column)) throw table.MissingColumn(column, role);
        if (options.AddBos && tokenizer.BosId is null)
            throw new DataException($"{tokenizer.Description} has no BOS token to start inputs with; turn off AddBos or declare bos_token in tokenizer_config.json.");
        if (options.InputEos && tokenizer.EosId is null)
            throw new DataException($"{tokenizer.Description} has no EOS token to end inputs with; turn off InputEos or declare eos_token in tokenizer_config.json.");

        var labelTokens = mapping.Labels is null ? null : LabelTokens(mapping.Labels, tokenizer, options);
        var bad = new BadRows(options.SkipBadRows);
        bad.Add(table.SkippedRows, table.SkipReasons);
        var examples = new List<TokenizedExample>(table.Rows.Count);
        var gold = new List<int>(table.Rows.Count);
        int truncated = 0;
        foreach (var row in table.Rows)
        {
            string where = row.Where(table.Path);
            try
            {
                var (example, label, wasTruncated) = BuildRow(row, where, mapping, tokenizer, options, labelTokens);
                examples.Add(example);
                gold.Add(label);
                if (wasTruncated) truncated++;
            }
            catch (DataException e)
            {
                // Row problems (and tokenizer errors such as an unknown symbol) get the row's location unless they have it.
                bad.Report(e.Message.StartsWith(where, StringComparison.Ordinal) ? e.Message : $"{where}: {e.Message}", e);
            }
        }
        if (examples.Count == 0)
            throw new DataException($"{table.Path}: no usable rows ({bad.Count} skipped{(bad.Reasons.Count > 0 ? $"; first: {bad.Reasons[0]}" : "")}).");
        var task = labelTokens is null ? null : new ClassificationTask(mapping.Labels!.Texts, labelTokens, [.. gold]);
        return new TokenizedDataset(examples, bad.Count, truncated, bad.Reasons, task);
    }

    private static (TokenizedExample Example, int Label, bool Truncated) BuildRow(TextRow row, string where, ColumnMapping mapping,
        ITextTokenizer tokenizer, TokenizeOptions options, int[][]? labelTokens)
    {
        string input = mapping.Template is { } template ? template.Render(c => Value(row, c, where)) : Value(row, mapping.InputColumn!, where);
        string rawTarget = Value(row, mapping.TargetColumn, where);
        int label = -1;
        int[] target;
        if (mapping.Labels is { } labels)
        {
            label = labels.IndexOf(rawTarget) ?? throw new DataException(
                $"{where}: \"{mapping.TargetColumn}\" = \"{rawTarget}\" is not one of the labels ({string.Join(", ", labels.Values.Select(v => $"\"{v}\""))}); add it to `labels` or fix the row.");
            target = labelTokens![label];
        }
        else
        {
            if (rawTarget.Length == 0) throw new DataException($"{where}: \"{mapping.TargetColumn}\" is empty; every row needs a target to train on.");
            target = TargetTokens(rawTarget, tokenizer, options);
        }
        if (target.Length >= options.MaxTokens)
            throw new DataException($"{where}: the target alone is {target.Length} tokens, leaving no room for input within {options.MaxTokens} (n_positions − prompt length); shorten the target or the prompt.");
        int[] ids = InputTokens(input, tokenizer, options);
        bool truncated = ids.Length + target.Length > options.MaxTokens;
        if (truncated) ids = KeepEnd(ids, options.MaxTokens - target.Length, options.AddBos);
        if (options.ModelVocabSize is int vocab)
            foreach (int id in ids.Concat(target))
                if (id >= vocab) throw new DataException($"{where}: token id {id} (\"{tokenizer.TokenText(id)}\") is outside the model's vocabulary [0, {vocab}); the tokenizer does not match the checkpoint.");
        return (new TokenizedExample(ids, target), label, truncated);
    }

    /// <summary>Label token sequences (target prefix and EOS as the targets spell them), built once: every row of a class shares its label's array.</summary>
    public static int[][] LabelTokens(Verbalizer labels, ITextTokenizer tokenizer, TokenizeOptions options)
    {
        var tokens = new int[labels.Texts.Count][];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = TargetTokens(labels.Texts[i], tokenizer, options);
            if (tokens[i].Length >= options.MaxTokens)
                throw new DataException($"labels: \"{labels.Texts[i]}\" is {tokens[i].Length} tokens, leaving no room for input within {options.MaxTokens}.");
            for (int j = 0; j < i; j++)
                if (tokens[j].AsSpan().SequenceEqual(tokens[i]))
                    throw new DataException($"labels: \"{labels.Texts[j]}\" and \"{labels.Texts[i]}\" tokenize to the same ids; rank classification cannot tell them apart.");
        }
        return tokens;
    }

    internal static int[] TargetTokens(string text, ITextTokenizer tokenizer, TokenizeOptions options)
    {
        int[] ids = tokenizer.Encode(options.TargetPrefix + text);
        if (options.TargetEos && tokenizer.EosId is int eos) ids = [.. ids, eos];
        if (ids.Length == 0) throw new DataException($"target \"{text}\" encodes to no tokens; every row needs a target to train on.");
        return ids;
    }

    internal static int[] InputTokens(string text, ITextTokenizer tokenizer, TokenizeOptions options)
    {
        int[] ids = tokenizer.Encode(text);
        if (options.AddBos) ids = [tokenizer.BosId!.Value, .. ids];
        if (options.InputEos) ids = [.. ids, tokenizer.EosId!.Value];
        return ids;
    }

    /// <summary>The last <paramref name="room"/> input tokens, or a leading BOS plus the last room − 1.</summary>
    internal static int[] KeepEnd(int[] ids, int room, bool keepFirst) =>
        keepFirst ? [ids[0], .. ids.AsSpan(ids.Length - (room - 1))] : ids[^room..];

    internal static string Value(TextRow row, string column, string where)
    {
        if (!row.Values.TryGetValue(column, out string? value))
            throw new DataException($"{where}: no \"{column}\" value (the row has: {string.Join(", ", row.Values.Keys.Select(k => $"\"{k}\""))}).");
        return value ?? throw new DataException($"{where}: \"{column}\" is null; every row needs a value there.");
    }
}
