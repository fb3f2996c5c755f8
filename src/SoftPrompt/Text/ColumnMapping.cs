namespace SoftPrompt.Text;

/// <summary>Which columns make a row's input and target: an input column or a template, a target column, and optionally a verbalizer.</summary>
public sealed record ColumnMapping
{
    public string? InputColumn { get; init; }
    public InputTemplate? Template { get; init; }
    public required string TargetColumn { get; init; }
    /// <summary>When set, the target column holds class values that are replaced by label texts, and the task is classification.</summary>
    public Verbalizer? Labels { get; init; }

    /// <summary>From the command-line options --input-column | --template, --target-column, --labels.</summary>
    public static ColumnMapping From(string? inputColumn, string? template, string targetColumn, string? labels)
    {
        if ((inputColumn is null) == (template is null))
            throw new DataException("give exactly one of `ColumnMapping.InputColumn` (use a column as the input) and `ColumnMapping.Template` (build the input from columns, e.g. \"sentence: {sentence}\\nanswer:\").");
        if (string.IsNullOrEmpty(targetColumn)) throw new DataException("`ColumnMapping.TargetColumn` is required: the column holding the text (or class) to predict.");
        return new ColumnMapping
        {
            InputColumn = inputColumn,
            Template = template is null ? null : InputTemplate.Parse(template),
            TargetColumn = targetColumn,
            Labels = labels is null ? null : Verbalizer.Parse(labels),
        };
    }

    /// <summary>Every column a row must have, with what it is used for.</summary>
    public IEnumerable<(string Column, string Role)> RequiredColumns()
    {
        if (InputColumn is not null) yield return (InputColumn, "the input");
        if (Template is not null)
            foreach (string column in Template.Columns) yield return (column, $"template \"{Template.Text}\"");
        yield return (TargetColumn, "the target");
    }
}
