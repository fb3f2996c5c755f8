using SoftPrompt.Engines;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// The checks every decoder-only decoding session passes, on whichever engine (<see cref="CachedDecodingTests"/> on the
/// CPU, <see cref="DeviceCachedDecodingTests"/> on a device): the same engine's full forward pass over whole sequences is
/// the reference for each cached step's logits.
/// </summary>
internal static class DecoderOnlyDecodingChecks
{
    public static readonly PromptLayout Layout = new([3, 5]);

    /// <summary>The full forward pass's next-token logits of whole sequences (prompt index, tokens).</summary>
    public static float[] FullLogits(IPromptEngine engine, IReadOnlyList<(int Prompt, List<int> Tokens)> rows)
    {
        var batch = new TokenBatch(rows.Count, rows.Max(r => r.Tokens.Count), Layout);
        batch.Reset(rows.Max(r => r.Tokens.Count));
        foreach (var (prompt, tokens) in rows) batch.AddDecodingRow(tokens.ToArray(), prompt);
        var logits = new float[rows.Count * engine.VocabSize];
        engine.NextTokenLogits(batch, logits);
        return logits;
    }

    /// <summary>Prefill and decoding mixed in one step, prompts of different lengths, a slot restarted with the other prompt.</summary>
    public static void SessionLogitsEqualAFullForwardAtEveryStep(IPromptEngine engine, double tolerance)
    {
        using var session = engine.OpenDecoding(slots: 3, tokensPerSlot: 12)!;
        var sequences = new List<(int Prompt, List<int> Tokens)> { (0, [1, 5, 7]), (1, [4]), (1, [2, 2, 9, 3, 11]) };
        for (int s = 0; s < 3; s++) session.Begin(s, sequences[s].Prompt, sequences[s].Tokens.ToArray());

        void Step(int[] slots)
        {
            var actual = new float[slots.Length * engine.VocabSize];
            session.NextTokenLogits(slots, actual);
            var expected = FullLogits(engine, [.. slots.Select(s => sequences[s])]);
            Assert.That(actual, Is.EqualTo(expected).Within(tolerance), $"slots {string.Join(",", slots)}");
        }
        void Append(int slot, int token)
        {
            session.Append(slot, token);
            sequences[slot].Tokens.Add(token);
        }

        Step([0, 1, 2]);
        Append(2, 6);
        Append(0, 13);
        Step([2, 0]);
        Append(0, 1);
        session.Begin(1, 0, [8, 8, 3, 20]);  // slot 1 restarts with the other prompt while slots 0 and 2 keep theirs
        sequences[1] = (0, [8, 8, 3, 20]);
        Append(2, 0);
        Step([1, 0, 2]);
        for (int i = 0; i < 4; i++)
        {
            for (int s = 0; s < 3; s++) Append(s, (5 * i + 7 * s) % engine.VocabSize);
            Step([0, 1, 2]);
        }
    }
}
