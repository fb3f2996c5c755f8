using System.CommandLine;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Cli;

/// <summary>What the data flags ask for: how text rows map to input and target, and whether bad rows are skipped.</summary>
internal sealed record DataRequest(string? InputColumn, string? Template, string? TargetColumn, string? Labels, string TargetPrefix, bool SkipBadRows)
{
    public bool HasMapping => InputColumn is not null || Template is not null || TargetColumn is not null || Labels is not null;

    public ColumnMapping? Mapping() => HasMapping ? ColumnMapping.From(InputColumn, Template, TargetColumn ?? "", Labels) : null;
}

/// <summary>
/// The data flags `train` and `eval` share, and loading a data file with them: pre-tokenized JSONL is read as ids;
/// JSONL/CSV/TSV/Parquet text is mapped through the columns, template and labels and tokenized with the model's
/// tokenizer, truncated to fit n_positions after the prompt.
/// </summary>
internal sealed class DataOptions
{
    public readonly Option<string?> InputColumn = new("--input-column") { Description = "Text data: the column read as the input" };
    public readonly Option<string?> Template = new("--template") { Description = "Text data: build the input from columns, e.g. \"review: {text}\\nsentiment:\"" };
    public readonly Option<string?> TargetColumn = new("--target-column") { Description = "Text data: the column holding the target text or class" };
    public readonly Option<string?> Labels = new("--labels") { Description = "Classification verbalizer value=text,…, e.g. 0=negative,1=positive (enables rank classification)" };
    public readonly Option<string?> TargetPrefix = new("--target-prefix") { Description = "Text put before every target, e.g. \" \" so GPT-2 reads \" positive\"" };
    public readonly Option<bool> SkipBadRows = new("--skip-bad-rows") { Description = "Skip and count malformed rows instead of stopping at the first" };

    public IEnumerable<Option> All => [InputColumn, Template, TargetColumn, Labels, TargetPrefix, SkipBadRows];

    public DataRequest Read(ParseResult result) => new(result.GetValue(InputColumn), result.GetValue(Template), result.GetValue(TargetColumn),
        result.GetValue(Labels), result.GetValue(TargetPrefix) ?? "", result.GetValue(SkipBadRows));

    public static bool IsText(string path) => !PretokenizedJsonl.IsPretokenized(path);

    /// <param name="tokenizer">The model's tokenizer; needed for text data only.</param>
    public static TokenizedDataset Load(string path, DataRequest request, Func<ITextTokenizer> tokenizer, LoadedModel model, int promptLength, TextWriter log)
    {
        int maxTokens = model.Engine.MaxPositions - promptLength;
        if (maxTokens <= 0) throw new ArgumentException($"A prompt of {promptLength} vectors leaves no room for tokens within n_positions {model.Engine.MaxPositions}; use a shorter --prompt-length.");
        var options = TokenizeOptions.For(model.Family, model.Directory, maxTokens) with
        {
            SkipBadRows = request.SkipBadRows,
            TargetPrefix = request.TargetPrefix,
            ModelVocabSize = model.Engine.VocabSize,
        };
        bool text = IsText(path);
        if (!text && request.HasMapping)
            throw new DataException($"{path}: the rows are pre-tokenized (input_ids/target_ids), so --input-column, --template, --target-column and --labels do not apply; drop them or use a text data file.");
        var dataset = DatasetLoader.Load(path, text ? tokenizer() : null, request.Mapping(), options);
        if (dataset.SkippedRows > 0)
            log.WriteLine($"{path}: skipped {dataset.SkippedRows} bad rows" + (dataset.SkipReasons.Count > 0 ? $" (first: {dataset.SkipReasons[0]})" : ""));
        if (dataset.TruncatedRows > 0)
            log.WriteLine($"{path}: truncated the input of {dataset.TruncatedRows} rows to fit {maxTokens} tokens (n_positions − prompt length)");
        return dataset;
    }

    /// <summary>The model's tokenizer, or null when it ships none (pre-tokenized data works without one).</summary>
    public static ITextTokenizer? TryTokenizer(Func<ITextTokenizer> load)
    {
        try { return load(); }
        catch (DataException) { return null; }
    }

    /// <summary>Each label's token ids as the targets spell them, without EOS: the class-labels initialisation embeds these.</summary>
    public static int[][] LabelTokens(Verbalizer labels, ITextTokenizer tokenizer, string targetPrefix) =>
        [.. labels.Texts.Select(text => tokenizer.Encode(targetPrefix + text))];
}
