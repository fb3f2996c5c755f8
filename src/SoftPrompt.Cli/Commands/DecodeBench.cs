using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SoftPrompt.Engines;
using SoftPrompt.Tuning;

namespace SoftPrompt.Cli.Commands;

/// <summary>
/// `softprompt bench --decode`: greedy generation speed. Each of the batch's rows is a prompt + seq-len random tokens
/// that generates exactly new-tokens tokens (no stop token), all rows decoding together; prefill and decoding are timed
/// apart when the engine has a KV cache, and the whole generation with `--no-cache`.
/// </summary>
internal static class DecodeBench
{
    public static int Run(LoadedModel loaded, string shapeText, int batchSize, int seqLen, int promptLength, int newTokens, int repeats, bool useCache, bool json)
    {
        if (newTokens <= 0) throw new ArgumentException($"--new-tokens must be positive, got {newTokens}.");
        if (repeats <= 0) throw new ArgumentException($"--steps must be positive, got {repeats}.");
        var engine = loaded.Engine;
        // An encoder-decoder model's input and its generated tokens run through separate stacks, each up to the limit.
        if (engine is IEncoderDecoderEngine ? Math.Max(promptLength + seqLen, newTokens) > engine.MaxPositions : promptLength + seqLen + newTokens > engine.MaxPositions)
            throw new ArgumentException($"prompt {promptLength} + {seqLen} tokens + {newTokens} new tokens exceed the model's {engine.MaxPositions} positions.");
        var random = new Random(3);
        var prompt = new float[promptLength * engine.EmbeddingSize];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (float)(random.NextDouble() - 0.5);
        engine.LoadPrompts(prompt, 1, promptLength);
        var inputs = Enumerable.Range(0, batchSize).Select(_ => Enumerable.Range(0, seqLen).Select(_ => random.Next(engine.VocabSize)).ToArray()).ToList();
        var promptIndices = new int[batchSize];

        // One untimed round first: the JIT, the thread pool and the caches' first allocation.
        Generate(engine, inputs, promptIndices, Math.Min(newTokens, 2), useCache);
        double prefillSeconds = 0, decodeSeconds = 0, totalSeconds = 0;
        for (int r = 0; r < repeats; r++)
        {
            var (prefill, decode, total) = Generate(engine, inputs, promptIndices, newTokens, useCache);
            prefillSeconds += prefill;
            decodeSeconds += decode;
            totalSeconds += total;
        }
        prefillSeconds /= repeats;
        decodeSeconds /= repeats;
        totalSeconds /= repeats;
        double tokensPerSecond = (double)batchSize * newTokens / totalSeconds;
        double msPerToken = 1000 * totalSeconds / newTokens;
        long peak = Process.GetCurrentProcess().PeakWorkingSet64;
        var inv = CultureInfo.InvariantCulture;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["model"] = loaded.Directory, ["family"] = loaded.Family.Name, ["device"] = engine.DeviceName, ["kv_cache"] = useCache,
                ["batch_size"] = batchSize, ["seq_len"] = seqLen, ["prompt_length"] = promptLength, ["new_tokens"] = newTokens, ["repeats"] = repeats,
                ["tokens_per_second"] = tokensPerSecond, ["ms_per_step"] = msPerToken, ["prefill_ms"] = 1000 * prefillSeconds,
                ["decode_ms_per_step"] = useCache && newTokens > 1 ? 1000 * decodeSeconds / (newTokens - 1) : null, ["peak_rss_bytes"] = peak,
            }));
            return 0;
        }
        Console.WriteLine($"{loaded.Directory} on {engine.DeviceName}, greedy decoding {(useCache ? "with" : "without")} a KV cache");
        Console.WriteLine($"{shapeText}, {newTokens} new tokens per row, mean of {repeats}");
        string split = useCache ? string.Create(inv, $"  (prefill {1000 * prefillSeconds:F1} ms, then {(newTokens > 1 ? 1000 * decodeSeconds / (newTokens - 1) : 0):F2} ms per step)") : "";
        Console.WriteLine(string.Create(inv, $"{tokensPerSecond:F1} new tokens/s  {msPerToken:F2} ms per step{split}  peak RSS {peak / 1048576.0:F0} MiB"));
        return 0;
    }

    /// <summary>Seconds of (prefill, the steps after it, everything) for one generation of <paramref name="newTokens"/> per row.</summary>
    private static (double Prefill, double Decode, double Total) Generate(IPromptEngine engine, List<int[]> inputs, int[] promptIndices, int newTokens, bool useCache)
    {
        var clock = Stopwatch.StartNew();
        if (!useCache)
        {
            GreedyDecoder.Generate(engine, inputs, promptIndices, newTokens, stopToken: null, batchSize: inputs.Count, useCache: false);
            return (0, 0, clock.Elapsed.TotalSeconds);
        }
        using var session = engine.OpenDecoding(inputs.Count, inputs.Max(i => i.Length) + newTokens) // enough for either kind of model
            ?? throw new ArgumentException($"The {engine.DeviceName} engine of this model has no KV cache yet; add --no-cache.");
        var slots = Enumerable.Range(0, inputs.Count).ToArray();
        var tokens = new int[inputs.Count];
        foreach (int s in slots) session.Begin(s, promptIndices[s], inputs[s]);
        session.NextTokens(slots, tokens);
        double prefill = clock.Elapsed.TotalSeconds;
        for (int step = 1; step < newTokens; step++)
        {
            foreach (int s in slots) session.Append(s, tokens[s]);
            session.NextTokens(slots, tokens);
        }
        double total = clock.Elapsed.TotalSeconds;
        return (prefill, total - prefill, total);
    }
}
