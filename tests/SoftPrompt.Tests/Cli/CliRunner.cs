namespace SoftPrompt.Tests.Cli;

/// <summary>Runs the `softprompt` entry point in-process and captures what it prints.</summary>
internal static class CliRunner
{
    private static readonly object ConsoleGate = new();

    public static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var entry = typeof(SoftPrompt.Cli.CliErrors).Assembly.EntryPoint!;
        lock (ConsoleGate)
        {
            var (oldOut, oldError) = (Console.Out, Console.Error);
            using var output = new StringWriter();
            using var error = new StringWriter();
            Console.SetOut(output);
            Console.SetError(error);
            try
            {
                int code = (int)entry.Invoke(null, [args])!;
                return (code, output.ToString(), error.ToString());
            }
            finally
            {
                Console.SetOut(oldOut);
                Console.SetError(oldError);
            }
        }
    }
}
