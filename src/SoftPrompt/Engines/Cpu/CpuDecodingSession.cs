using System.Numerics;

namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on a decoder-only CPU engine. Cache rows: every prompt's positions first (computed once here: under
/// the causal mask a prompt's keys and values depend on the prompt alone), then <see cref="TokensPerSlot"/> rows per slot
/// for its own positions P..P+n−1, so a slot reads its prompt's rows in place and never copies them.
/// </summary>
internal sealed class CpuDecodingSession<T> : CpuDecodingSlots<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly CpuDecoderOnlyEngine<T> engine;
    private readonly KeyValueCache<T> cache;
    private CachedScratch<T> scratch;
    private readonly T[] hidden, normed, logits;

    public CpuDecodingSession(CpuDecoderOnlyEngine<T> engine, int slots, int tokensPerSlot) : base(engine, slots, tokensPerSlot)
    {
        this.engine = engine;
        long rows = Layout.TotalLength + (long)slots * tokensPerSlot;
        if (rows > int.MaxValue) throw new ArgumentException($"A key/value cache of {slots} slots × {tokensPerSlot} tokens is too large; decode fewer rows at once.");
        (cache, scratch) = engine.RentDecodingBuffers((int)rows, Math.Max(Layout.TotalLength, slots));
        int d = engine.EmbeddingSize;
        hidden = new T[slots * d];
        normed = new T[slots * d];
        logits = new T[(long)slots * engine.VocabSize];
        CachePrompts();
    }

    private void CachePrompts()
    {
        var t = scratch.Tokens;
        t.Count = Layout.TotalLength;
        if (t.Count == 0) return;
        for (int k = 0, j = 0; k < Layout.Count; k++)
            for (int p = 0; p < Layout.Length(k); p++, j++)
            {
                t.Positions[j] = p;
                t.PromptStart[j] = Layout.Offset(k);
                t.PromptLength[j] = Layout.Length(k);
                t.OwnStart[j] = 0;
            }
        engine.RunCached(scratch, cache, promptVectors: true);
    }

    public override void Begin(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        if (input.IsEmpty) throw new ArgumentException("A decoding row needs at least one input token.", nameof(input));
        StartSlot(slot, promptIndex, input);
        foreach (int id in input) Pending[slot].Add(id);
    }

    private protected override void Release() => engine.ReturnDecodingBuffers(cache, scratch);

    private protected override ReadOnlySpan<T> LogitsOf(int row) => logits.AsSpan(row * Vocab, Vocab);

    /// <summary>Packs the listed slots' pending tokens, runs them through the cache, and leaves each slot's next-token logits in <see cref="logits"/>.</summary>
    private protected override void Run(ReadOnlySpan<int> slots)
    {
        int n = CheckStep(slots);
        if (n > scratch.Capacity) scratch = engine.NewCachedScratch(n);
        var t = scratch.Tokens;
        t.Count = n;
        int j = 0, promptRows = Layout.TotalLength;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r], k = SlotPrompt[slot], promptLength = Layout.Length(k);
            foreach (int id in Pending[slot])
            {
                scratch.Ids[j] = id;
                t.Positions[j] = promptLength + Positions[slot]++;
                t.PromptStart[j] = Layout.Offset(k);
                t.PromptLength[j] = promptLength;
                t.OwnStart[j] = promptRows + slot * TokensPerSlot - promptLength;
                j++;
            }
            Pending[slot].Clear();
            LastRows[r] = j - 1;
        }
        engine.RunCached(scratch, cache, promptVectors: false);
        engine.CachedLogits(scratch, LastRows.AsSpan(0, slots.Length), hidden, normed, logits);
    }
}
