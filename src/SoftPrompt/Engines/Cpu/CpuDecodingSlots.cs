using System.Numerics;
using System.Numerics.Tensors;

namespace SoftPrompt.Engines;

/// <summary>A CPU decoding session's reads: the step's logits sit on the host, one row per listed slot (<see cref="LogitsOf"/>).</summary>
internal abstract class CpuDecodingSlots<T> : DecodingSlots where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private protected CpuDecodingSlots(IPromptEngine engine, int slots, int tokensPerSlot) : base(engine, slots, tokensPerSlot) { }

    /// <summary>The next-token logits [V] of the step's row <paramref name="row"/> (the row-th listed slot).</summary>
    private protected abstract ReadOnlySpan<T> LogitsOf(int row);

    private protected sealed override void ReadLogits(int rows, Span<float> destination)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = LogitsOf(r);
            for (int i = 0; i < Vocab; i++) destination[r * Vocab + i] = float.CreateTruncating(row[i]);
        }
    }

    private protected sealed override void ReadTokens(int rows, Span<int> tokens)
    {
        for (int r = 0; r < rows; r++) tokens[r] = TensorPrimitives.IndexOfMax<T>(LogitsOf(r));
    }
}
