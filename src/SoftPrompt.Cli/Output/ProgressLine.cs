using System.Globalization;
using System.Text;

namespace SoftPrompt.Cli.Output;

/// <summary>
/// Training progress as text: "step 120/1000 [####------] 12% loss 0.4312 lr 3.0e-01 |g| 1.2e+00 1,234 tok/s ETA 01:23".
/// Live mode redraws one line in place (carriage return, at most ten times a second); plain mode writes a line on
/// the first and last step and every <c>plainEvery</c> steps; off writes no step lines. Messages print in every mode.
/// Hand-rolled rather than a live-rendering library: the loop is synchronous, a single redrawn line is all it needs,
/// and it keeps its hands off the console when output is captured.
/// </summary>
internal sealed class ProgressLine
{
    private const int BarWidth = 20;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);
    private readonly TextWriter writer;
    private readonly ProgressMode mode;
    private readonly int plainEvery;
    private readonly StringBuilder text = new(160);
    private DateTime lastDraw = DateTime.MinValue;
    private int drawnLength;
    private bool drawnFinal;

    public ProgressLine(TextWriter writer, ProgressMode mode, int plainEvery)
    {
        this.writer = writer;
        this.mode = mode;
        this.plainEvery = Math.Max(1, plainEvery);
    }

    /// <summary>
    /// Whether step <paramref name="step"/> gets a progress line (first, last and every plainEvery-th step in plain mode;
    /// at most ten redraws a second in live mode). A true answer commits the caller to <see cref="Draw"/> this step, so the
    /// caller reads what only a drawn line shows (the gradient norm, which waits for the device) on these steps only.
    /// </summary>
    public bool Due(int step, int steps)
    {
        bool last = step == steps;
        switch (mode)
        {
            case ProgressMode.Off:
                return false;
            case ProgressMode.Plain:
                return step == 1 || last || step % plainEvery == 0;
            default:
                var now = DateTime.UtcNow;
                if (!last && now - lastDraw < RedrawInterval) return false;
                lastDraw = now;
                return true;
        }
    }

    /// <summary>Writes the line of a step <see cref="Due"/> said yes to.</summary>
    public void Draw(int step, int steps, float loss, float learningRate, float gradientNorm, double tokensPerSecond, double etaSeconds)
    {
        Format(step, steps, loss, learningRate, gradientNorm, tokensPerSecond, etaSeconds, bar: mode == ProgressMode.Live);
        if (mode == ProgressMode.Plain)
        {
            writer.WriteLine(text);
            return;
        }
        Redraw();
        drawnFinal = step == steps;
    }

    /// <summary>Prints a message (evaluations, checkpoints) on its own line, above the live line, which is redrawn on the next update; shown in every mode.</summary>
    public void Message(string message)
    {
        Clear();
        writer.WriteLine(message);
    }

    /// <summary>Leaves the live line in place and moves below it.</summary>
    public void Finish()
    {
        if (mode == ProgressMode.Live && drawnLength > 0)
        {
            writer.WriteLine();
            drawnLength = 0;
        }
    }

    private void Format(int step, int steps, float loss, float learningRate, float gradientNorm, double tokensPerSecond, double etaSeconds, bool bar)
    {
        var inv = CultureInfo.InvariantCulture;
        int width = steps.ToString(inv).Length;
        text.Clear();
        text.Append(inv, $"step {step.ToString(inv).PadLeft(width)}/{steps}");
        if (bar)
        {
            int filled = (int)((long)BarWidth * step / steps);
            text.Append(" [").Append('#', filled).Append('-', BarWidth - filled).Append(inv, $"] {100.0 * step / steps,3:F0}%");
        }
        text.Append(inv, $"  loss {loss:F4}  lr {learningRate:0.0e+00}  |g| {gradientNorm:0.0e+00}  {tokensPerSecond:N0} tok/s");
        if (step < steps) text.Append("  ETA ").Append(Duration(etaSeconds));
    }

    private void Redraw()
    {
        int limit = int.MaxValue;
        try { if (Console.WindowWidth > 1) limit = Console.WindowWidth - 1; }
        catch (IOException) { }
        if (text.Length > limit) text.Length = limit;
        writer.Write('\r');
        writer.Write(text);
        if (drawnLength > text.Length) writer.Write(new string(' ', drawnLength - text.Length));
        drawnLength = text.Length;
        writer.Flush();
    }

    private void Clear()
    {
        if (mode != ProgressMode.Live || drawnLength == 0) return;
        if (drawnFinal)
        {
            // The finished bar is the run's summary line: keep it and write below it.
            writer.WriteLine();
            drawnLength = 0;
            return;
        }
        writer.Write('\r');
        writer.Write(new string(' ', drawnLength));
        writer.Write('\r');
        drawnLength = 0;
    }

    public static string Duration(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) return "--:--";
        var span = TimeSpan.FromSeconds(Math.Round(seconds));
        return span.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}:{span.Minutes:D2}:{span.Seconds:D2}")
            : string.Create(CultureInfo.InvariantCulture, $"{span.Minutes:D2}:{span.Seconds:D2}");
    }
}
