namespace SoftPrompt.Engines;

/// <summary>
/// An encoder-decoder decoding session's inputs waiting for the encoder, on the CPU or a device: each slot's input from
/// its Begin, packed at the next step into one encoder batch (a row per slot begun since the last step; each row's
/// target, a pad, is never read).
/// </summary>
internal sealed class EncoderSlotInputs
{
    private readonly PromptLayout layout;
    private readonly int[][] inputs;
    private readonly int[] inputLength, encodeSlots, padTarget;
    private readonly bool[] waiting;
    private readonly TokenBatch batch;

    public EncoderSlotInputs(int slots, int tokensPerSlot, PromptLayout layout, int padTokenId)
    {
        this.layout = layout;
        inputs = [.. Enumerable.Range(0, slots).Select(_ => new int[tokensPerSlot])];
        inputLength = new int[slots];
        encodeSlots = new int[slots];
        padTarget = [padTokenId];
        waiting = new bool[slots];
        batch = new TokenBatch(slots, tokensPerSlot + 1, layout);
    }

    /// <summary>Refuses a row the encoder would see as empty (before the slot's state changes).</summary>
    public void CheckNotEmpty(int promptIndex, ReadOnlySpan<int> input)
    {
        if ((uint)promptIndex < (uint)layout.Count && input.Length + layout.Length(promptIndex) == 0)
            throw new ArgumentException("The encoder needs at least one position: a prompt or an input token.", nameof(input));
    }

    public void Store(int slot, ReadOnlySpan<int> input)
    {
        input.CopyTo(inputs[slot]);
        inputLength[slot] = input.Length;
        waiting[slot] = true;
    }

    /// <summary>
    /// Packs the waiting ones among <paramref name="slots"/> into <paramref name="encoderBatch"/> (row i: the i-th returned
    /// slot, with its prompt from <paramref name="slotPrompt"/>); returns those slots, empty when none waits.
    /// </summary>
    public ReadOnlySpan<int> Pack(ReadOnlySpan<int> slots, ReadOnlySpan<int> slotPrompt, out TokenBatch encoderBatch)
    {
        encoderBatch = batch;
        int count = 0, longestInput = 0;
        foreach (int slot in slots)
        {
            if (!waiting[slot]) continue;
            encodeSlots[count++] = slot;
            longestInput = Math.Max(longestInput, inputLength[slot]);
        }
        if (count == 0) return [];
        batch.Reset(longestInput + 1);
        for (int e = 0; e < count; e++)
        {
            int slot = encodeSlots[e];
            batch.AddRow(inputs[slot].AsSpan(0, inputLength[slot]), padTarget, slotPrompt[slot]);
            waiting[slot] = false;
        }
        return encodeSlots.AsSpan(0, count);
    }
}
