using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on a decoder-only device engine (the twin of <see cref="CpuDecodingSession{T}"/>). Cache rows: every
/// prompt's positions first, computed once when the session opens (under the causal mask a prompt's keys and values
/// depend on the prompt alone) and read in place by every slot using it, then <see cref="DecodingSlots.TokensPerSlot"/>
/// rows per slot for its own positions. A step packs the listed slots' pending tokens (a new input's whole prefill beside
/// the other slots' single tokens), describes each row by its position and key range, and runs them in one pass.
/// </summary>
internal sealed class DeviceDecodingSession : DecodingSlots
{
    private readonly DecoderOnlyDeviceEngine engine;
    private readonly DeviceDecodingPlan plan;
    /// <summary>The step's index sections on the host, packed for one upload (see <see cref="DeviceDecodingPlan.Indices"/>).</summary>
    private readonly int[] indices;
    private readonly int promptRows;

    public DeviceDecodingSession(DecoderOnlyDeviceEngine engine, int slots, int tokensPerSlot) : base(engine, slots, tokensPerSlot)
    {
        this.engine = engine;
        promptRows = Layout.TotalLength;
        int longestPrompt = Enumerable.Range(0, Layout.Count).Select(Layout.Length).DefaultIfEmpty(0).Max();
        if ((long)longestPrompt + tokensPerSlot > engine.MaxPositions)
            throw new ArgumentException($"A slot of {tokensPerSlot} tokens after a prompt of {longestPrompt} exceeds the model's {engine.MaxPositions} positions.", nameof(tokensPerSlot));
        long cacheRows = promptRows + (long)slots * tokensPerSlot;
        long stepRows = Math.Max(promptRows, (long)slots * tokensPerSlot);
        if (cacheRows > int.MaxValue / 4) throw new ArgumentException($"A key/value cache of {slots} slots × {tokensPerSlot} tokens is too large; decode fewer rows at once.");
        plan = DeviceDecodingPlan.Allocate(engine.Device, engine.DecodingShape, engine.VocabSize, slots, (int)Math.Max(stepRows, 1), (int)cacheRows);
        indices = new int[plan.IndexSections * plan.StepRows];
        try { CachePrompts(); }
        catch
        {
            plan.Dispose();
            throw;
        }
    }

    /// <summary>Every prompt's positions 0..P−1 through the blocks once: their keys and values fill the cache's first rows.</summary>
    private void CachePrompts()
    {
        int n = promptRows;
        if (n == 0) return;
        int longest = 0;
        for (int k = 0, j = 0; k < Layout.Count; k++)
            for (int p = 0; p < Layout.Length(k); p++, j++)
            {
                // A prompt row attends to its own prompt's rows 0..p, which live at the prompt's offset.
                SetRow(n, j, token: -1, promptRow: j, position: p, prefixStart: 0, prefixLength: 0, ownStart: Layout.Offset(k), keyLength: p + 1);
                longest = Math.Max(longest, p + 1);
            }
        Upload(n);
        engine.RunCachedRows(plan, n, longest);
    }

    public override void Begin(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        if (input.IsEmpty) throw new ArgumentException("A decoding row needs at least one input token.", nameof(input));
        StartSlot(slot, promptIndex, input);
        foreach (int id in input) Pending[slot].Add(id);
    }

    private protected override void Run(ReadOnlySpan<int> slots)
    {
        int n = CheckStep(slots), j = 0, longest = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r], k = SlotPrompt[slot], promptLength = Layout.Length(k);
            foreach (int id in Pending[slot])
            {
                int position = promptLength + Positions[slot]++;
                SetRow(n, j++, id, promptRow: 0, position, prefixStart: Layout.Offset(k), promptLength, ownStart: promptRows + slot * TokensPerSlot, keyLength: position + 1);
                longest = Math.Max(longest, position + 1);
            }
            Pending[slot].Clear();
            LastRows[r] = j - 1;
        }
        Upload(n);
        engine.RunCachedRows(plan, n, longest);
        engine.CachedFinalNorm(plan, n);
        var head = plan.Head;
        for (int r = 0; r < slots.Length; r++) head.HostHiddenRows[r] = LastRows[r];
        head.SetTargets(slots.Length);
    }

    private protected override void ReadLogits(int rows, Span<float> destination) => engine.CachedNextTokens(plan, rows, destination, default);

    private protected override void ReadTokens(int rows, Span<int> tokens) => engine.CachedNextTokens(plan, rows, default, tokens);

    /// <summary>Row <paramref name="j"/> of a step of <paramref name="n"/> rows in the packed sections of <see cref="indices"/>.</summary>
    private void SetRow(int n, int j, int token, int promptRow, int position, int prefixStart, int prefixLength, int ownStart, int keyLength)
    {
        indices[j] = token;
        indices[n + j] = promptRow;
        indices[2 * n + j] = position;
        int keys = 3 * n + 4 * j;
        indices[keys] = prefixStart;
        indices[keys + 1] = prefixLength;
        indices[keys + 2] = ownStart;
        indices[keys + 3] = keyLength;
    }

    private void Upload(int n)
    {
        int count = plan.IndexSections * n;
        engine.Device.CopyToDevice<int>(indices.AsSpan(0, count), plan.StepIndices.Slice(0, count));
    }

    private protected override void Release() => plan.Dispose();
}
