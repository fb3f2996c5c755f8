using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on the CPU T5 engine. A slot's prompt + input is encoded on the first step after
/// <see cref="Begin"/> (the inputs begun since the last step are encoded together), its cross-attention keys and values are
/// projected then and kept; its decoder starts from decoder_start and runs one new position per <see cref="Append"/>.
/// <see cref="TokensPerSlot"/> bounds both a slot's input and its generated tokens.
/// </summary>
internal sealed class CpuT5DecodingSession<T> : IDecodingSession where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly CpuT5Engine<T> engine;
    private readonly PromptLayout layout;
    private readonly T5DecodingCache<T> cache;
    private readonly int[] slotPrompt, decoderLength, encoderLength, inputLength, lastRows, encodeSlots;
    private readonly int[][] inputs;
    private readonly bool[] needsEncoding;
    private readonly List<int>[] pending;
    private readonly TokenBatch encodeBatch;
    private T5DecodingScratch<T> scratch;
    private T[] logits;

    public CpuT5DecodingSession(CpuT5Engine<T> engine, int slots, int tokensPerSlot)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSlot);
        this.engine = engine;
        layout = engine.PromptLayout ?? throw new InvalidOperationException("Load prompts before decoding (LoadPrompts).");
        Slots = slots;
        TokensPerSlot = tokensPerSlot;
        var config = engine.Config;
        int encoderCapacity = layout.MaxLength + tokensPerSlot;
        if ((long)slots * Math.Max(tokensPerSlot, encoderCapacity) * config.AttentionSize > Array.MaxLength)
            throw new ArgumentException($"A key/value cache of {slots} slots × {tokensPerSlot} tokens is too large; decode fewer rows at once.");
        cache = new T5DecodingCache<T>(config.DecoderLayers, slots, tokensPerSlot, encoderCapacity, config.AttentionSize, engine.DecoderDistanceBias(tokensPerSlot));
        slotPrompt = new int[slots];
        Array.Fill(slotPrompt, -1);
        decoderLength = new int[slots];
        encoderLength = new int[slots];
        inputLength = new int[slots];
        lastRows = new int[slots];
        encodeSlots = new int[slots];
        inputs = [.. Enumerable.Range(0, slots).Select(_ => new int[tokensPerSlot])];
        needsEncoding = new bool[slots];
        pending = [.. Enumerable.Range(0, slots).Select(_ => new List<int>())];
        encodeBatch = new TokenBatch(slots, tokensPerSlot + 1, layout);
        scratch = new T5DecodingScratch<T>(config, slots);
        logits = new T[(long)slots * config.VocabSize];
    }

    public int Slots { get; }
    public int TokensPerSlot { get; }

    public void Begin(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        CheckSlot(slot);
        if ((uint)promptIndex >= (uint)layout.Count) throw new ArgumentOutOfRangeException(nameof(promptIndex), $"Prompt {promptIndex} is not among the {layout.Count} loaded prompts.");
        if (input.Length + layout.Length(promptIndex) == 0) throw new ArgumentException("The encoder needs at least one position: a prompt or an input token.", nameof(input));
        if (input.Length > TokensPerSlot) throw new ArgumentException($"An input of {input.Length} tokens does not fit a slot of {TokensPerSlot}.", nameof(input));
        foreach (int id in input)
            if ((uint)id >= (uint)engine.VocabSize) throw new ArgumentOutOfRangeException(nameof(input), $"Token id {id} is outside the vocabulary of {engine.VocabSize}.");
        slotPrompt[slot] = promptIndex;
        input.CopyTo(inputs[slot]);
        inputLength[slot] = input.Length;
        needsEncoding[slot] = true;
        decoderLength[slot] = 0;
        pending[slot].Clear();
        pending[slot].Add(engine.Config.DecoderStartTokenId);
    }

    public void Append(int slot, int token)
    {
        CheckSlot(slot);
        if (slotPrompt[slot] < 0) throw new InvalidOperationException($"Slot {slot} has not begun (Begin).");
        if ((uint)token >= (uint)engine.VocabSize) throw new ArgumentOutOfRangeException(nameof(token), $"Token id {token} is outside the vocabulary of {engine.VocabSize}.");
        if (decoderLength[slot] + pending[slot].Count >= TokensPerSlot) throw new InvalidOperationException($"Slot {slot} is full ({TokensPerSlot} tokens).");
        pending[slot].Add(token);
    }

    public void NextTokenLogits(ReadOnlySpan<int> slots, Span<float> destination)
    {
        int v = engine.VocabSize;
        if (destination.Length < (long)slots.Length * v) throw new ArgumentException($"Logits buffer holds {destination.Length} values, {slots.Length} slots × {v} need {(long)slots.Length * v}.");
        Run(slots);
        for (int r = 0; r < slots.Length; r++)
            for (int i = 0; i < v; i++) destination[r * v + i] = float.CreateTruncating(logits[(long)lastRows[r] * v + i]);
    }

    public void NextTokens(ReadOnlySpan<int> slots, Span<int> tokens)
    {
        if (tokens.Length < slots.Length) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, {slots.Length} slots asked.");
        Run(slots);
        int v = engine.VocabSize;
        for (int r = 0; r < slots.Length; r++) tokens[r] = TensorPrimitives.IndexOfMax<T>(logits.AsSpan(lastRows[r] * v, v));
    }

    /// <summary>Encodes the listed slots begun since the last step, then runs every listed slot's pending decoder tokens in one packed pass.</summary>
    private void Run(ReadOnlySpan<int> slots)
    {
        if (slots.Length > Slots) throw new ArgumentException($"{slots.Length} slots asked, the session has {Slots}.");
        int n = 0, toEncode = 0, longestInput = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r];
            CheckSlot(slot);
            if (pending[slot].Count == 0) throw new InvalidOperationException($"Slot {slot} has no new token (Begin or Append first).");
            for (int q = 0; q < r; q++)
                if (slots[q] == slot) throw new ArgumentException($"Slot {slot} is listed twice.");
            n += pending[slot].Count;
            if (!needsEncoding[slot]) continue;
            encodeSlots[toEncode++] = slot;
            longestInput = Math.Max(longestInput, inputLength[slot]);
        }
        if (toEncode > 0)
        {
            encodeBatch.Reset(longestInput + 1);
            for (int e = 0; e < toEncode; e++)
            {
                int slot = encodeSlots[e];
                encodeBatch.AddRow(inputs[slot].AsSpan(0, inputLength[slot]), [engine.Config.PadTokenId], slotPrompt[slot]);
                needsEncoding[slot] = false;
            }
            engine.Encode(encodeBatch, encodeSlots.AsSpan(0, toEncode), cache, encoderLength);
        }
        if (n > scratch.Capacity)
        {
            scratch = new T5DecodingScratch<T>(engine.Config, n);
            logits = new T[(long)n * engine.VocabSize];
        }
        scratch.SelfTokens.Count = scratch.CrossTokens.Count = n;
        int j = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r];
            foreach (int id in pending[slot])
            {
                scratch.Ids[j] = id;
                Place(scratch.SelfTokens, j, decoderLength[slot]++, slot * TokensPerSlot);
                Place(scratch.CrossTokens, j, encoderLength[slot] - 1, slot * cache.EncoderCapacity); // sees every encoder position
                j++;
            }
            pending[slot].Clear();
            lastRows[r] = j - 1;
        }
        engine.DecodeCached(scratch, cache, logits);
    }

    /// <summary>Token <paramref name="token"/> sits at <paramref name="position"/> of a sequence whose rows start at <paramref name="firstRow"/> (no shared prompt rows).</summary>
    private static void Place(SoftPrompt.Cpu.CachedPositions positions, int token, int position, int firstRow)
    {
        positions.Positions[token] = position;
        positions.PromptStart[token] = 0;
        positions.PromptLength[token] = 0;
        positions.OwnStart[token] = firstRow;
    }

    private void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot), $"Slot {slot} is outside the session's {Slots} slots.");
    }

    public void Dispose() { }
}
