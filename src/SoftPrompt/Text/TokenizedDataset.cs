namespace SoftPrompt.Text;

/// <summary>A data file turned into examples, with what was skipped or truncated on the way and, for classification, the label task.</summary>
public sealed record TokenizedDataset(
    IReadOnlyList<TokenizedExample> Examples,
    int SkippedRows,
    int TruncatedRows,
    IReadOnlyList<string> SkipReasons,
    ClassificationTask? Classification);
