using System.CommandLine;
using System.Text.Json;
using System.Text.RegularExpressions;
using SoftPrompt.Checkpoints;
using SoftPrompt.Text;

namespace SoftPrompt.Cli;

/// <summary>
/// Turns every error a user can cause into one clear line and exit code 1 (no stack trace, no .NET parameter or type
/// names); a `--json` run gets the same line as a JSON object {"error": …} on standard output.
/// </summary>
internal static partial class CliErrors
{
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is CheckpointException or DataException or ArgumentException or InvalidOperationException or IOException
            or NotSupportedException or UnauthorizedAccessException or FormatException)
        {
            return Report(CliFlags.Translate(Clean(e)));
        }
        catch (OutOfMemoryException)
        {
            return Report("out of memory: this run needs more memory than the machine can give it; use a smaller --batch-size or shorter rows.");
        }
        catch (OverflowException)
        {
            return Report("a size computed from the flags overflows (a --batch-size, --ensemble or length far beyond any machine); use realistic values.");
        }
    }

    /// <summary>A command line the parser refused: its first error and where the help is, instead of the whole help text.</summary>
    public static int Usage(ParseResult parsed, string[] args)
    {
        var command = parsed.CommandResult.Command;
        string verb = command.Parents.Any() ? " " + command.Name : "";
        return Report($"{WithoutTypeNames(parsed.Errors[0].Message)} (`softprompt{verb} --help` lists the flags)", json: args.Contains("--json"));
    }

    /// <summary>The parser names the .NET type it wanted ("System.Nullable`1[System.Int32]"); a user wants to know what to type.</summary>
    private static string WithoutTypeNames(string message) => ExpectedType().Replace(message, m => m.Groups["type"].Value switch
    {
        var t when t.Contains("Int32") || t.Contains("Int64") => "as a whole number",
        var t when t.Contains("Single") || t.Contains("Double") => "as a number",
        var t when t.Contains("Boolean") => "as true or false",
        _ => "as the flag's value",
    });

    [GeneratedRegex(@"as expected type '(?<type>[^']*)'", RegexOptions.CultureInvariant)]
    private static partial Regex ExpectedType();

    private static bool jsonRun;
    // Quotes and backticks stay readable in the message; it is printed, never embedded in HTML.
    private static readonly JsonSerializerOptions JsonErrors = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Whether errors go out as JSON (set once the arguments are known).</summary>
    public static void UseJson(string[] args) => jsonRun = args.Contains("--json");

    private static int Report(string message, bool? json = null)
    {
        if (json ?? jsonRun) Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = message }, JsonErrors));
        else Console.Error.WriteLine($"error: {message}");
        return 1;
    }

    /// <summary>
    /// The message without what only a .NET programmer reads: "(Parameter 'x')", "Actual value was …", a guard's
    /// "name ('value') must be …" phrasing, which becomes "`name` must be … (got value)" for <see cref="CliFlags"/> to translate.
    /// </summary>
    internal static string Clean(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } name })
        {
            message = message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal);
            message = ActualValue().Replace(message, "");
            var guard = Guard().Match(message);
            if (guard.Success && guard.Groups["name"].Value == name)
                message = $"`{name}` {guard.Groups["rest"].Value.TrimEnd('.')} (got {guard.Groups["value"].Value}).";
        }
        return message.Trim();
    }

    [GeneratedRegex(@"\s*Actual value was [^\r\n]*", RegexOptions.CultureInvariant)]
    private static partial Regex ActualValue();

    [GeneratedRegex(@"^(?<name>[A-Za-z][A-Za-z0-9]*) \('(?<value>[^']*)'\) (?<rest>.*)$", RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex Guard();
}
