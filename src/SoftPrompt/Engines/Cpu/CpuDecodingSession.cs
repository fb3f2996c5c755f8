using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on a decoder-only CPU engine. Cache rows: every prompt's positions first (computed once here: under
/// the causal mask a prompt's keys and values depend on the prompt alone), then <see cref="TokensPerSlot"/> rows per slot
/// for its own positions P..P+n−1, so a slot reads its prompt's rows in place and never copies them.
/// </summary>
internal sealed class CpuDecodingSession<T> : IDecodingSession where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly CpuDecoderOnlyEngine<T> engine;
    private readonly PromptLayout layout;
    private readonly KeyValueCache<T> cache;
    private readonly int[] slotPrompt, slotLength;
    private readonly List<int>[] pending;
    private CachedScratch<T> scratch;
    private readonly int[] lastRows;
    private readonly T[] hidden, normed, logits;

    public CpuDecodingSession(CpuDecoderOnlyEngine<T> engine, int slots, int tokensPerSlot)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSlot);
        this.engine = engine;
        layout = engine.PromptLayout ?? throw new InvalidOperationException("Load prompts before decoding (LoadPrompts).");
        Slots = slots;
        TokensPerSlot = tokensPerSlot;
        long rows = layout.TotalLength + (long)slots * tokensPerSlot;
        if (rows > int.MaxValue) throw new ArgumentException($"A key/value cache of {slots} slots × {tokensPerSlot} tokens is too large; decode fewer rows at once.");
        cache = new KeyValueCache<T>(engine.LayerCount, (int)rows, engine.CachedKeyValueWidth);
        slotPrompt = new int[slots];
        slotLength = new int[slots];
        pending = [.. Enumerable.Range(0, slots).Select(_ => new List<int>())];
        Array.Fill(slotPrompt, -1);
        int d = engine.EmbeddingSize;
        lastRows = new int[slots];
        hidden = new T[slots * d];
        normed = new T[slots * d];
        logits = new T[(long)slots * engine.VocabSize];
        scratch = engine.NewCachedScratch(Math.Max(layout.TotalLength, slots));
        CachePrompts();
    }

    public int Slots { get; }
    public int TokensPerSlot { get; }

    private void CachePrompts()
    {
        var t = scratch.Tokens;
        t.Count = layout.TotalLength;
        if (t.Count == 0) return;
        for (int k = 0, j = 0; k < layout.Count; k++)
            for (int p = 0; p < layout.Length(k); p++, j++)
            {
                t.Positions[j] = p;
                t.PromptStart[j] = layout.Offset(k);
                t.PromptLength[j] = layout.Length(k);
                t.OwnStart[j] = 0;
            }
        engine.RunCached(scratch, cache, promptVectors: true);
    }

    public void Begin(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        CheckSlot(slot);
        if ((uint)promptIndex >= (uint)layout.Count) throw new ArgumentOutOfRangeException(nameof(promptIndex), $"Prompt {promptIndex} is not among the {layout.Count} loaded prompts.");
        if (input.IsEmpty) throw new ArgumentException("A decoding row needs at least one input token.", nameof(input));
        if (input.Length > TokensPerSlot) throw new ArgumentException($"An input of {input.Length} tokens does not fit a slot of {TokensPerSlot}.", nameof(input));
        foreach (int id in input)
            if ((uint)id >= (uint)engine.VocabSize) throw new ArgumentOutOfRangeException(nameof(input), $"Token id {id} is outside the vocabulary of {engine.VocabSize}.");
        slotPrompt[slot] = promptIndex;
        slotLength[slot] = 0;
        pending[slot].Clear();
        foreach (int id in input) pending[slot].Add(id);
    }

    public void Append(int slot, int token)
    {
        CheckSlot(slot);
        if (slotPrompt[slot] < 0) throw new InvalidOperationException($"Slot {slot} has not begun (Begin).");
        if ((uint)token >= (uint)engine.VocabSize) throw new ArgumentOutOfRangeException(nameof(token), $"Token id {token} is outside the vocabulary of {engine.VocabSize}.");
        if (slotLength[slot] + pending[slot].Count >= TokensPerSlot) throw new InvalidOperationException($"Slot {slot} is full ({TokensPerSlot} tokens).");
        pending[slot].Add(token);
    }

    public void NextTokenLogits(ReadOnlySpan<int> slots, Span<float> destination)
    {
        int v = engine.VocabSize;
        if (destination.Length < (long)slots.Length * v) throw new ArgumentException($"Logits buffer holds {destination.Length} values, {slots.Length} slots × {v} need {(long)slots.Length * v}.");
        Run(slots);
        for (int r = 0; r < slots.Length; r++)
            for (int i = 0; i < v; i++) destination[r * v + i] = float.CreateTruncating(logits[(long)r * v + i]);
    }

    public void NextTokens(ReadOnlySpan<int> slots, Span<int> tokens)
    {
        if (tokens.Length < slots.Length) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, {slots.Length} slots asked.");
        Run(slots);
        int v = engine.VocabSize;
        for (int r = 0; r < slots.Length; r++) tokens[r] = TensorPrimitives.IndexOfMax<T>(logits.AsSpan(r * v, v));
    }

    /// <summary>Packs the listed slots' pending tokens, runs them through the cache, and leaves each slot's next-token logits in <see cref="logits"/>.</summary>
    private void Run(ReadOnlySpan<int> slots)
    {
        if (slots.Length > Slots) throw new ArgumentException($"{slots.Length} slots asked, the session has {Slots}.");
        int n = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r];
            CheckSlot(slot);
            if (pending[slot].Count == 0) throw new InvalidOperationException($"Slot {slot} has no new token (Begin or Append first).");
            for (int q = 0; q < r; q++)
                if (slots[q] == slot) throw new ArgumentException($"Slot {slot} is listed twice.");
            n += pending[slot].Count;
        }
        if (n > scratch.Capacity) scratch = engine.NewCachedScratch(n);
        var t = scratch.Tokens;
        t.Count = n;
        int j = 0, promptRows = layout.TotalLength;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r], k = slotPrompt[slot], promptLength = layout.Length(k);
            foreach (int id in pending[slot])
            {
                scratch.Ids[j] = id;
                t.Positions[j] = promptLength + slotLength[slot]++;
                t.PromptStart[j] = layout.Offset(k);
                t.PromptLength[j] = promptLength;
                t.OwnStart[j] = promptRows + slot * TokensPerSlot - promptLength;
                j++;
            }
            pending[slot].Clear();
            lastRows[r] = j - 1;
        }
        engine.RunCached(scratch, cache, promptVectors: false);
        engine.CachedLogits(scratch, lastRows.AsSpan(0, slots.Length), hidden, normed, logits);
    }

    private void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot), $"Slot {slot} is outside the session's {Slots} slots.");
    }

    public void Dispose() { }
}
