namespace SoftPrompt.Cli.Output;

/// <summary>How training reports progress: a live line redrawn in place, plain lines now and then, or nothing.</summary>
internal enum ProgressMode { Auto, Live, Plain, Off }

internal static class ProgressModes
{
    public static readonly string[] Names = ["auto", "live", "plain", "off"];

    public static ProgressMode Parse(string name) => name switch
    {
        "live" => ProgressMode.Live,
        "plain" => ProgressMode.Plain,
        "off" => ProgressMode.Off,
        _ => ProgressMode.Auto,
    };

    /// <summary>Auto is live on a terminal and plain when the output goes to a file or pipe (logs get whole lines, not carriage returns).</summary>
    public static ProgressMode Resolve(ProgressMode mode, bool toStandardError)
    {
        if (mode != ProgressMode.Auto) return mode;
        bool redirected = toStandardError ? Console.IsErrorRedirected : Console.IsOutputRedirected;
        return redirected || Environment.GetEnvironmentVariable("TERM") == "dumb" ? ProgressMode.Plain : ProgressMode.Live;
    }
}
