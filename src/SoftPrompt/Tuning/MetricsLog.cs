using System.Buffers;
using System.Text;
using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>One line of a metrics log: its kind ("train" or "eval"), step, and numbers by name (NaN where null).</summary>
public sealed record MetricsRecord(string Kind, int Step, IReadOnlyDictionary<string, double> Values);

/// <summary>
/// A run's metrics as JSON Lines, one object per line, flushed as written so a crashed run keeps its log:
/// <c>{"kind":"train","step":12,"loss":…,"lr":…,"grad_norm":…,"tokens_per_second":…,"elapsed_s":…}</c> after each step,
/// <c>{"kind":"eval","step":100,"dev_accuracy":…,"dev_loss":…,…,"best":true}</c> after each evaluation.
/// Lines are written through one reused buffer, so logging a step allocates nothing.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    private readonly FileStream stream;
    private readonly ArrayBufferWriter<byte> buffer = new(512);
    private readonly Utf8JsonWriter json;

    private MetricsLog(string path, FileMode mode)
    {
        Path = path;
        try { stream = new FileStream(path, mode, FileAccess.Write, FileShare.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot write the metrics log ({e.Message}); choose another `MetricsLog` path.", e);
        }
        stream.Seek(0, SeekOrigin.End);
        json = new Utf8JsonWriter(buffer);
    }

    public string Path { get; }

    /// <summary>Starts an empty log (replacing an old one).</summary>
    public static MetricsLog Create(string path) => new(path, FileMode.Create);

    /// <summary>
    /// Continues the log of a run resumed at <paramref name="step"/>: lines past that step came from the stretch
    /// after the checkpoint that the resumed run repeats, so they are dropped (the file is rewritten atomically).
    /// </summary>
    public static MetricsLog Resume(string path, int step)
    {
        if (File.Exists(path))
        {
            var kept = File.ReadLines(path).Where(line => StepOf(line) is int s && s <= step).ToList();
            AtomicFile.Write(path, s =>
            {
                var bytes = Encoding.UTF8.GetBytes(string.Concat(kept.Select(line => line + "\n")));
                s.Write(bytes);
            });
        }
        return new MetricsLog(path, FileMode.OpenOrCreate);
    }

    /// <summary>Every how many steps a train row carries grad_norm (and on the first and last step).</summary>
    public const int GradientNormEvery = 10;

    /// <summary>Whether step <paramref name="step"/>'s row should carry grad_norm: reading it waits for the device, so not every step does.</summary>
    public static bool LogsGradientNorm(int step, int steps) => step == 1 || step == steps || step % GradientNormEvery == 0;

    /// <param name="gradientNorm">Passed in rather than read from the progress (reading it waits for the device); null leaves grad_norm out of the row.</param>
    public void Step(in TrainProgress progress, float? gradientNorm, double tokensPerSecond)
    {
        Begin("train", progress.Step);
        Number("loss", progress.Loss);
        Number("lr", progress.LearningRate);
        if (gradientNorm is { } norm) Number("grad_norm", norm);
        Number("tokens_per_second", tokensPerSecond);
        Number("elapsed_s", progress.Seconds);
        End();
    }

    public void Evaluation(int step, DevMetrics metrics, bool improved)
    {
        Begin("eval", step);
        foreach (var (name, value) in metrics.Values) Number("dev_" + name, value);
        json.WriteBoolean("best", improved);
        End();
    }

    public void Dispose()
    {
        json.Dispose();
        stream.Dispose();
    }

    /// <summary>Reads a log back (blank or unreadable lines, such as a line cut by a crash, are skipped).</summary>
    public static IReadOnlyList<MetricsRecord> Read(string path)
    {
        var records = new List<MetricsRecord>();
        foreach (string line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var document = StrictJson.Parse(line);
                var root = document.RootElement;
                var values = new Dictionary<string, double>();
                foreach (var property in root.EnumerateObject())
                    if (property.Name != "step" && property.Value.ValueKind is JsonValueKind.Number or JsonValueKind.Null)
                        values[property.Name] = property.Value.ValueKind == JsonValueKind.Number ? property.Value.GetDouble() : double.NaN;
                records.Add(new MetricsRecord(root.GetProperty("kind").GetString() ?? "", root.GetProperty("step").GetInt32(), values));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException) { }
        }
        return records;
    }

    private static int? StepOf(string line)
    {
        try
        {
            using var document = StrictJson.Parse(line);
            return document.RootElement.TryGetProperty("step", out var step) && step.TryGetInt32(out int value) ? value : null;
        }
        catch (JsonException) { return null; }
    }

    private void Begin(string kind, int step)
    {
        buffer.ResetWrittenCount();
        json.Reset(buffer);
        json.WriteStartObject();
        json.WriteString("kind", kind);
        json.WriteNumber("step", step);
    }

    // JSON has no NaN or infinity; a value that is not finite is written as null.
    private void Number(string name, double value)
    {
        if (double.IsFinite(value)) json.WriteNumber(name, value);
        else json.WriteNull(name);
    }

    // Floats are written as floats (0.1, not 0.10000000149011612).
    private void Number(string name, float value)
    {
        if (float.IsFinite(value)) json.WriteNumber(name, value);
        else json.WriteNull(name);
    }

    private void End()
    {
        json.WriteEndObject();
        json.Flush();
        stream.Write(buffer.WrittenSpan);
        stream.WriteByte((byte)'\n');
        stream.Flush();
    }
}
