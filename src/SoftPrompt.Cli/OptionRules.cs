using System.CommandLine;
using System.Globalization;

namespace SoftPrompt.Cli;

/// <summary>Range rules on numeric flags, checked by the parser so a nonsense value is a one-line usage error before any work.</summary>
internal static class OptionRules
{
    public static Option<int> Positive(this Option<int> option) => Rule(option, v => v > 0, "positive");
    public static Option<int> NonNegative(this Option<int> option) => Rule(option, v => v >= 0, "zero or more");
    public static Option<int?> Positive(this Option<int?> option) => Rule(option, v => v is null or > 0, "positive");

    private static Option<T> Rule<T>(Option<T> option, Func<T, bool> valid, string what)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0) return;
            var value = result.GetValueOrDefault<T>();
            if (!valid(value)) result.AddError(string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be {what}, got {value}."));
        });
        return option;
    }
}
