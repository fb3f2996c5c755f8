using SoftPrompt.Checkpoints;
using SoftPrompt.Text;

namespace SoftPrompt.Cli;

/// <summary>Turns the library's domain errors into one clear line and exit code 1 (no stack trace for expected failures).</summary>
internal static class CliErrors
{
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is CheckpointException or DataException or ArgumentException or InvalidOperationException or IOException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {CliFlags.Translate(e.Message)}");
            return 1;
        }
    }
}
