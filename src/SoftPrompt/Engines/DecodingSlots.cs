namespace SoftPrompt.Engines;

/// <summary>
/// What every decoding session shares, on the CPU or a device: the slots (each with its prompt, the positions it has run
/// and the tokens waiting to run), the checks on <see cref="Begin"/>, <see cref="Append"/> and a step's slot list. A
/// session adds its caches, runs the step (<see cref="Run"/>) and hands out the step's logits or argmax tokens.
/// </summary>
internal abstract class DecodingSlots : IDecodingSession
{
    private protected DecodingSlots(IPromptEngine engine, int slots, int tokensPerSlot)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSlot);
        Layout = engine.PromptLayout ?? throw new InvalidOperationException("Load prompts before decoding (LoadPrompts).");
        Vocab = engine.VocabSize;
        Slots = slots;
        TokensPerSlot = tokensPerSlot;
        SlotPrompt = new int[slots];
        Array.Fill(SlotPrompt, -1);
        Positions = new int[slots];
        Pending = [.. Enumerable.Range(0, slots).Select(_ => new List<int>())];
        LastRows = new int[slots];
    }

    public int Slots { get; }
    public int TokensPerSlot { get; }

    private protected PromptLayout Layout { get; }
    private protected int Vocab { get; }
    /// <summary>Each slot's prompt (−1 before its first Begin), the positions it has run, the tokens it will run next.</summary>
    private protected int[] SlotPrompt { get; }
    private protected int[] Positions { get; }
    private protected List<int>[] Pending { get; }
    /// <summary>After a step: the step row whose logits are listed slot r's next token.</summary>
    private protected int[] LastRows { get; }

    public abstract void Begin(int slot, int promptIndex, ReadOnlySpan<int> input);

    /// <summary>The checks every Begin makes; the slot then starts with no position run and nothing pending.</summary>
    private protected void StartSlot(int slot, int promptIndex, ReadOnlySpan<int> input)
    {
        CheckSlot(slot);
        if ((uint)promptIndex >= (uint)Layout.Count) throw new ArgumentOutOfRangeException(nameof(promptIndex), $"Prompt {promptIndex} is not among the {Layout.Count} loaded prompts.");
        if (input.Length > TokensPerSlot) throw new ArgumentException($"An input of {input.Length} tokens does not fit a slot of {TokensPerSlot}.", nameof(input));
        foreach (int id in input) CheckToken(id, nameof(input));
        SlotPrompt[slot] = promptIndex;
        Positions[slot] = 0;
        Pending[slot].Clear();
    }

    public void Append(int slot, int token)
    {
        CheckSlot(slot);
        if (SlotPrompt[slot] < 0) throw new InvalidOperationException($"Slot {slot} has not begun (Begin).");
        CheckToken(token, nameof(token));
        if (Positions[slot] + Pending[slot].Count >= TokensPerSlot) throw new InvalidOperationException($"Slot {slot} is full ({TokensPerSlot} tokens).");
        Pending[slot].Add(token);
    }

    public void NextTokenLogits(ReadOnlySpan<int> slots, Span<float> destination)
    {
        if (destination.Length < (long)slots.Length * Vocab) throw new ArgumentException($"Logits buffer holds {destination.Length} values, {slots.Length} slots × {Vocab} need {(long)slots.Length * Vocab}.");
        Run(slots);
        ReadLogits(slots.Length, destination);
    }

    public void NextTokens(ReadOnlySpan<int> slots, Span<int> tokens)
    {
        if (tokens.Length < slots.Length) throw new ArgumentException($"Token buffer holds {tokens.Length} rows, {slots.Length} slots asked.");
        Run(slots);
        ReadTokens(slots.Length, tokens);
    }

    /// <summary>Runs the listed slots' pending tokens and keeps each one's next-token logits for the reads below.</summary>
    private protected abstract void Run(ReadOnlySpan<int> slots);

    /// <summary>After <see cref="Run"/>: the logits [rows, V] of the step's first <paramref name="rows"/> rows (row r: the r-th listed slot).</summary>
    private protected abstract void ReadLogits(int rows, Span<float> destination);

    /// <summary>After <see cref="Run"/>: each of the step's first <paramref name="rows"/> rows' argmax (the first among equal maxima).</summary>
    private protected abstract void ReadTokens(int rows, Span<int> tokens);

    /// <summary>The checks on a step's slot list; returns how many tokens the step runs.</summary>
    private protected int CheckStep(ReadOnlySpan<int> slots)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (slots.Length > Slots) throw new ArgumentException($"{slots.Length} slots asked, the session has {Slots}.");
        int n = 0;
        for (int r = 0; r < slots.Length; r++)
        {
            int slot = slots[r];
            CheckSlot(slot);
            if (Pending[slot].Count == 0) throw new InvalidOperationException($"Slot {slot} has no new token (Begin or Append first).");
            for (int q = 0; q < r; q++)
                if (slots[q] == slot) throw new ArgumentException($"Slot {slot} is listed twice.");
            n += Pending[slot].Count;
        }
        return n;
    }

    private void CheckToken(int id, string parameter)
    {
        if ((uint)id >= (uint)Vocab) throw new ArgumentOutOfRangeException(parameter, $"Token id {id} is outside the vocabulary of {Vocab}.");
    }

    private protected void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot), $"Slot {slot} is outside the session's {Slots} slots.");
    }

    private bool disposed;

    /// <summary>Releases the session's caches once; a disposed session refuses further steps (its buffers may serve another).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        Release();
    }

    private protected abstract void Release();
}
