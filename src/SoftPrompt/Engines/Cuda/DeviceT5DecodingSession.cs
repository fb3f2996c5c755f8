namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on the device T5 engine (the twin of <see cref="CpuT5DecodingSession{T}"/>). A slot's prompt +
/// input is encoded on the first step after <see cref="Begin"/> (the inputs begun since the last step together), its
/// cross-attention keys and values are projected then into the slot's <c>encoderCapacity</c> cache rows; its decoder
/// starts from decoder_start and runs one new position per <see cref="DecodingSlots.Append"/> into its own
/// <see cref="DecodingSlots.TokensPerSlot"/> self-attention cache rows. Everything lives in one plan allocated when the
/// session opens; a step uploads one index block and allocates nothing.
/// </summary>
internal sealed class DeviceT5DecodingSession : DecodingSlots
{
    private readonly CudaT5Engine engine;
    private readonly DeviceDecodingPlan plan;
    private readonly int encoderCapacity;
    private readonly int[] indices, encoderLength, hostCacheRows;
    private readonly EncoderSlotInputs encoderInputs;

    public DeviceT5DecodingSession(CudaT5Engine engine, int slots, int tokensPerSlot) : base(engine, slots, tokensPerSlot)
    {
        this.engine = engine;
        encoderCapacity = Layout.MaxLength + tokensPerSlot;
        long selfRows = (long)slots * tokensPerSlot, crossRows = (long)slots * encoderCapacity;
        if (crossRows > int.MaxValue / 4) throw new ArgumentException($"A key/value cache of {slots} slots × {tokensPerSlot} tokens is too large; decode fewer rows at once.");
        plan = DeviceDecodingPlan.Allocate(engine.Device, engine.DecodingShape, engine.VocabSize, slots, stepRows: (int)selfRows, cacheRows: (int)selfRows,
            new CrossAttentionShape(CacheRows: (int)crossRows, EncodedRows: (int)crossRows, BiasDistances: tokensPerSlot));
        try { engine.PrepareDecoding(plan, slots, encoderCapacity); }
        catch
        {
            plan.Dispose();
            throw;
        }
        indices = new int[plan.IndexSections * plan.StepRows];
        encoderLength = new int[slots];
        hostCacheRows = new int[crossRows];
        encoderInputs = new EncoderSlotInputs(slots, tokensPerSlot, Layout, engine.Config.PadTokenId);
    }

    public override void Begin(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        encoderInputs.CheckNotEmpty(promptIndex, input);
        StartSlot(slot, promptIndex, input);
        encoderInputs.Store(slot, input);
        Pending[slot].Add(engine.Config.DecoderStartTokenId);
    }

    /// <summary>Encodes the listed slots begun since the last step, then runs every listed slot's pending decoder tokens in one packed pass.</summary>
    private protected override void Run(ReadOnlySpan<int> slots)
    {
        int n = CheckStep(slots);
        Encode(slots);
        int j = 0, longestSelf = 1, longestCross = 1;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r];
            foreach (int id in Pending[slot])
            {
                int keys = ++Positions[slot];
                SetRow(n, j++, id, selfStart: slot * TokensPerSlot, keys, crossStart: slot * encoderCapacity, encoderLength[slot]);
                longestSelf = Math.Max(longestSelf, keys);
                longestCross = Math.Max(longestCross, encoderLength[slot]);
            }
            Pending[slot].Clear();
            LastRows[r] = j - 1;
        }
        engine.Device.CopyToDevice<int>(indices.AsSpan(0, plan.IndexSections * n), plan.StepIndices.Slice(0, plan.IndexSections * n));
        engine.DecodeCachedRows(plan, n, longestSelf, longestCross);
        var head = plan.Head;
        for (int r = 0; r < slots.Length; r++) head.HostHiddenRows[r] = LastRows[r];
        head.SetTargets(slots.Length);
    }

    private void Encode(ReadOnlySpan<int> slots)
    {
        var encoded = encoderInputs.Pack(slots, SlotPrompt, out var batch);
        if (!encoded.IsEmpty) engine.EncodeForDecoding(batch, encoded, plan, encoderCapacity, encoderLength, hostCacheRows);
    }

    /// <summary>
    /// Row <paramref name="j"/> of a step of <paramref name="n"/> rows: its token, its self-attention keys (the slot's own
    /// first <paramref name="selfKeys"/> rows, no shared prefix) and its cross-attention keys (every encoded position).
    /// </summary>
    private void SetRow(int n, int j, int token, int selfStart, int selfKeys, int crossStart, int crossKeys)
    {
        indices[j] = token;
        indices[n + j] = 0;      // prompt row and position: unused (T5's decoder has no prompt rows and no position table)
        indices[2 * n + j] = 0;
        int self = 3 * n + 4 * j, cross = 7 * n + 4 * j;
        (indices[self], indices[self + 1], indices[self + 2], indices[self + 3]) = (0, 0, selfStart, selfKeys);
        (indices[cross], indices[cross + 1], indices[cross + 2], indices[cross + 3]) = (0, 0, crossStart, crossKeys);
    }

    private protected override void ReadLogits(int rows, Span<float> destination) => engine.CachedNextTokens(plan, rows, destination, default);

    private protected override void ReadTokens(int rows, Span<int> tokens) => engine.CachedNextTokens(plan, rows, default, tokens);

    private protected override void Release() => plan.Dispose();
}
