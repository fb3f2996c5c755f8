namespace SoftPrompt.Engines;

/// <summary>
/// How an engine's prompts are stored: K prompts of lengths P_0 … P_{K−1}, packed one after another as
/// [ΣP_k, d] rows, prompt k's vectors at rows [Offset(k), Offset(k) + Length(k)). Prompts of different tasks may have
/// different lengths; a batch row with prompt k reads its tokens from position Length(k) on. Immutable.
/// </summary>
public sealed class PromptLayout : IEquatable<PromptLayout>
{
    private readonly int[] lengths;
    private readonly int[] offsets;

    public PromptLayout(ReadOnlySpan<int> promptLengths)
    {
        if (promptLengths.IsEmpty) throw new ArgumentException("A prompt layout needs at least one prompt.");
        lengths = promptLengths.ToArray();
        offsets = new int[lengths.Length + 1];
        for (int k = 0; k < lengths.Length; k++)
        {
            if (lengths[k] < 0) throw new ArgumentOutOfRangeException(nameof(promptLengths), $"Prompt {k} has negative length {lengths[k]}.");
            offsets[k + 1] = checked(offsets[k] + lengths[k]);
            MaxLength = Math.Max(MaxLength, lengths[k]);
        }
    }

    /// <summary>K prompts of one length P.</summary>
    public static PromptLayout Uniform(int count, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var all = new int[count];
        Array.Fill(all, length);
        return new PromptLayout(all);
    }

    public int Count => lengths.Length;
    /// <summary>ΣP_k: rows of the packed [ΣP_k, d] prompt storage.</summary>
    public int TotalLength => offsets[^1];
    public int MaxLength { get; }
    public bool IsUniform => Array.TrueForAll(lengths, l => l == lengths[0]);
    public ReadOnlySpan<int> Lengths => lengths;
    /// <summary>[K + 1]: prompt k's first row, then ΣP_k (what the kernels take).</summary>
    public ReadOnlySpan<int> Offsets => offsets;

    public int Length(int prompt) => lengths[prompt];
    public int Offset(int prompt) => offsets[prompt];

    /// <summary>Number of values of the packed prompts (or of their gradient) for vectors of width d.</summary>
    public int ValueCount(int width) => checked(TotalLength * width);

    public bool Equals(PromptLayout? other) => other is not null && lengths.AsSpan().SequenceEqual(other.lengths);
    public override bool Equals(object? obj) => Equals(obj as PromptLayout);
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int l in lengths) hash.Add(l);
        return hash.ToHashCode();
    }

    public override string ToString() => IsUniform ? $"{Count} × P={lengths[0]}" : "P=" + string.Join("/", lengths);
}

public static class PromptEngineExtensions
{
    /// <summary>The engine's prompt layout, or a clear error when no prompts are loaded yet.</summary>
    public static PromptLayout RequirePrompts(this IPromptEngine engine) =>
        engine.PromptLayout ?? throw new InvalidOperationException("Load prompts into the engine first (IPromptEngine.LoadPrompts).");
}
