namespace SoftPrompt.Text;

/// <summary>The one entry point from a data file to examples: pre-tokenized JSONL is read as ids, everything else as a table that is mapped and tokenized.</summary>
public static class DatasetLoader
{
    /// <param name="tokenizer">Needed for text data; for pre-tokenized data it only supplies the vocabulary size when <see cref="TokenizeOptions.ModelVocabSize"/> is unset.</param>
    /// <param name="mapping">Needed for text data; must be null for pre-tokenized data, whose rows already say what is input and target.</param>
    public static TokenizedDataset Load(string path, ITextTokenizer? tokenizer, ColumnMapping? mapping, TokenizeOptions options)
    {
        if (PretokenizedJsonl.IsPretokenized(path))
        {
            if (mapping is not null)
                throw new DataException($"{path}: the rows are pre-tokenized (input_ids/target_ids), so column, template and label options do not apply; drop them or use a text data file.");
            int vocab = options.ModelVocabSize ?? tokenizer?.VocabSize
                ?? throw new ArgumentException("Pre-tokenized data needs TokenizeOptions.ModelVocabSize (or a tokenizer) to check ids against.", nameof(options));
            var examples = PretokenizedJsonl.Load(path, vocab, options.MaxTokens, options.SkipBadRows, out int skipped, out var reasons);
            return new TokenizedDataset(examples, skipped, 0, reasons, null);
        }
        if (tokenizer is null)
            throw new DataException($"{path}: text data needs a tokenizer, but none was found beside the model; add the tokenizer files or supply pre-tokenized JSONL (input_ids/target_ids).");
        if (mapping is null)
            throw new DataException($"{path}: say which columns to use: `ColumnMapping.InputColumn` or `ColumnMapping.Template`, and `ColumnMapping.TargetColumn` (columns: {string.Join(", ", TextTable.Read(path, true).Columns)}).");
        var table = TextTable.Read(path, options.SkipBadRows);
        return ExampleBuilder.Build(table, mapping, tokenizer, options);
    }
}
