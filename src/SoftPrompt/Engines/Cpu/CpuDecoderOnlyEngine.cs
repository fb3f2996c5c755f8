using System.Numerics;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// The skeleton of the decoder-only CPU engines (GPT-2, Llama; the CPU mirror of <see cref="DecoderOnlyDeviceEngine"/>):
/// embeddings with the prompt spliced in, the blocks, the final norm and the LM head at target positions; the same in
/// reverse into the prompt gradient; logits and decoding. A family contributes its block, forward and reverse.
/// IPromptEngine is re-implemented here so that the decoding members below replace its default ones.
/// </summary>
public abstract class CpuDecoderOnlyEngine<T> : CpuEngine<T>, IPromptEngine where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private DecoderCpuActivations<T>? activations;
    /// <summary>Shape of the last forward pass.</summary>
    private protected int rows, sequence;

    private protected CpuDecoderOnlyEngine(int embeddingSize, int vocabSize, int maxPositions, int layers)
        : base(embeddingSize, vocabSize, maxPositions) => Layers = layers;

    private protected int Layers { get; }
    private protected sealed override CpuLanguageModelHead<T> Head => activations!.Head;
    /// <summary>The activations of the last forward pass (the family's own type, from <see cref="CreateActivations"/>).</summary>
    private protected DecoderCpuActivations<T> Activations => activations!;
    private protected abstract ReadOnlySpan<T> TokenEmbedding { get; }
    /// <summary>[sequence, d] added at each position with the embeddings (GPT-2's wpe; zeros where RoPE rotates q and k instead).</summary>
    private protected abstract ReadOnlySpan<T> PositionTable { get; }
    /// <summary>lm_head [V, d], or the tied token embedding.</summary>
    private protected abstract ReadOnlySpan<T> HeadWeight { get; }

    /// <summary>The family's activations for a capacity of <paramref name="capacityRows"/> × <paramref name="capacitySequence"/>.</summary>
    private protected abstract DecoderCpuActivations<T> CreateActivations(int capacityRows, int capacitySequence);
    /// <summary>Block <paramref name="layer"/>: BlockInput(layer) → BlockInput(layer + 1), saving what its reverse pass reads.</summary>
    private protected abstract void BlockForward(int layer);
    /// <summary>FinalNorm = norm(Final).</summary>
    private protected abstract void FinalNormForward();
    /// <summary><paramref name="dResidual"/> += d(loss)/d(Final), from Gradient = d(loss)/d(FinalNorm).</summary>
    private protected abstract void FinalNormBackward(T[] dResidual);
    /// <summary><paramref name="dResidual"/>: d(loss)/d(block output) in, d(loss)/d(block input) out.</summary>
    private protected abstract void BlockBackward(int layer, T[] dResidual);

    private protected sealed override void ReleaseActivations() => activations = null;

    /// <summary>Grows the activations to hold <paramref name="batch"/> (every dimension to the largest seen, so alternating shapes settle on one capacity).</summary>
    private DecoderCpuActivations<T> Plan(TokenBatch batch)
    {
        var a = activations;
        int seq = batch.SequenceLength;
        if (a is null || a.Rows * a.Sequence < batch.Rows * seq || a.Sequence < seq)
            activations = a = CreateActivations(batch.Rows, Math.Max(seq, a?.Sequence ?? 0));
        return a;
    }

    private protected sealed override T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, VocabSize, MaxPositions, requireTargets: languageModelHead);
        var a = Plan(batch);
        rows = batch.Rows;
        sequence = batch.SequenceLength;
        int n = rows * sequence, d = EmbeddingSize;
        EmbeddingOps.Forward<T>(a.BlockInput(0), batch.Tokens.AsSpan(0, rows * batch.TokenLength), state.Prompts, batch.PromptIndex, state.Layout!.Offsets,
            TokenEmbedding, PositionTable, rows, sequence, batch.TokenLength, d);
        for (int l = 0; l < Layers; l++) BlockForward(l);
        FinalNormForward();
        if (!languageModelHead) return T.Zero;
        var head = a.Head;
        head.Clear();
        for (int pos = 0; pos < n; pos++)
            if (batch.Targets[pos] != TokenBatch.Ignore) head.Add(pos, batch.Targets[pos], pos / sequence);
        return head.Run(a.FinalNorm, HeadWeight, T.One, withGradient ? a.Gradient.AsSpan(0, n * d) : default, lossGradientWeight, countGreedyMatches);
    }

    private protected sealed override void RunBackward(TokenBatch batch, bool accumulate)
    {
        int d = EmbeddingSize;
        var dResidual = activations!.GradientNext;
        dResidual.AsSpan(0, rows * sequence * d).Clear();
        FinalNormBackward(dResidual);
        for (int l = Layers - 1; l >= 0; l--) BlockBackward(l, dResidual);
        EmbeddingOps.PromptGradient<T>(state.Gradient, dResidual, batch.PromptIndex, state.Layout!.Offsets, rows, sequence, d, accumulate);
    }

    /// <summary>Full logits [B, T, V] for every position (tests; training never materialises these).</summary>
    public void Logits(TokenBatch batch, Span<T> logits)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        int n = rows * sequence;
        if (logits.Length < (long)n * VocabSize) throw new ArgumentException($"Logits buffer needs {(long)n * VocabSize} values.");
        CpuGemm.Gemm(false, true, n, VocabSize, EmbeddingSize, T.One, activations!.FinalNorm, EmbeddingSize, HeadWeight, EmbeddingSize, T.Zero, logits, VocabSize);
    }

    public void NextTokenLogits(TokenBatch batch, Span<float> logits)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        activations!.Head.NextTokenLogits(batch, activations.FinalNorm, HeadWeight, logits);
    }

    public void NextTokens(TokenBatch batch, Span<int> tokens)
    {
        RunForward(batch, withGradient: false, countGreedyMatches: false, languageModelHead: false);
        activations!.Head.NextTokens(batch, activations.FinalNorm, HeadWeight, tokens);
    }
}
