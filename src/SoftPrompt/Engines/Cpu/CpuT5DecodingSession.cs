using System.Numerics;

namespace SoftPrompt.Engines;

/// <summary>
/// KV-cached decoding on the CPU T5 engine. A slot's prompt + input is encoded on the first step after
/// <see cref="Begin"/> (the inputs begun since the last step are encoded together), its cross-attention keys and values are
/// projected then and kept; its decoder starts from decoder_start and runs one new position per <see cref="Append"/>.
/// <see cref="TokensPerSlot"/> bounds both a slot's input and its generated tokens.
/// </summary>
internal sealed class CpuT5DecodingSession<T> : CpuDecodingSlots<T> where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private readonly CpuT5Engine<T> engine;
    private readonly T5DecodingCache<T> cache;
    private readonly int[] encoderLength;
    private readonly EncoderSlotInputs encoderInputs;
    private T5DecodingScratch<T> scratch;
    private T[] logits;

    public CpuT5DecodingSession(CpuT5Engine<T> engine, int slots, int tokensPerSlot) : base(engine, slots, tokensPerSlot)
    {
        this.engine = engine;
        var config = engine.Config;
        int encoderCapacity = Layout.MaxLength + tokensPerSlot;
        if ((long)slots * Math.Max(tokensPerSlot, encoderCapacity) * config.AttentionSize > Array.MaxLength)
            throw new ArgumentException($"A key/value cache of {slots} slots × {tokensPerSlot} tokens is too large; decode fewer rows at once.");
        cache = new T5DecodingCache<T>(config.DecoderLayers, slots, tokensPerSlot, encoderCapacity, config.AttentionSize, engine.DecoderDistanceBias(tokensPerSlot));
        encoderLength = new int[slots];
        encoderInputs = new EncoderSlotInputs(slots, tokensPerSlot, Layout, config.PadTokenId);
        scratch = new T5DecodingScratch<T>(config, slots);
        logits = new T[(long)slots * engine.VocabSize];
    }

    private protected override void Release() { }

    public override void Begin(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        encoderInputs.CheckNotEmpty(promptIndex, input);
        StartSlot(slot, promptIndex, input);
        encoderInputs.Store(slot, input);
        Pending[slot].Add(engine.Config.DecoderStartTokenId);
    }

    private protected override ReadOnlySpan<T> LogitsOf(int row) => logits.AsSpan(LastRows[row] * Vocab, Vocab);

    /// <summary>Encodes the listed slots begun since the last step, then runs every listed slot's pending decoder tokens in one packed pass.</summary>
    private protected override void Run(ReadOnlySpan<int> slots)
    {
        int n = CheckStep(slots);
        var encoded = encoderInputs.Pack(slots, SlotPrompt, out var batch);
        if (!encoded.IsEmpty) engine.Encode(batch, encoded, cache, encoderLength);
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
            foreach (int id in Pending[slot])
            {
                scratch.Ids[j] = id;
                Place(scratch.SelfTokens, j, Positions[slot]++, slot * TokensPerSlot);
                Place(scratch.CrossTokens, j, encoderLength[slot] - 1, slot * cache.EncoderCapacity); // sees every encoder position
                j++;
            }
            Pending[slot].Clear();
            LastRows[r] = j - 1;
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
}
