using System.Numerics;
using System.Runtime.CompilerServices;
using SoftPrompt.Cpu;

namespace SoftPrompt.Engines;

/// <summary>
/// The skeleton of the decoder-only CPU engines (GPT-2, Llama; the CPU mirror of <see cref="DecoderOnlyDeviceEngine"/>):
/// embeddings with the prompt spliced in, the blocks, the final norm and the LM head at target positions; the same in
/// reverse into the prompt gradient; logits and decoding, KV-cached through <see cref="CpuDecodingSession{T}"/>. A family
/// contributes its block: forward, reverse, and forward over packed tokens against a key/value cache.
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
    /// <summary>[positions, d] added at each position with the embeddings (GPT-2's wpe); empty where RoPE rotates q and k instead.</summary>
    private protected abstract ReadOnlySpan<T> PositionTable { get; }
    /// <summary>lm_head [V, d], or the tied token embedding.</summary>
    private protected abstract ReadOnlySpan<T> HeadWeight { get; }

    /// <summary>The family's activations for a capacity of <paramref name="capacityRows"/> × <paramref name="capacitySequence"/>.</summary>
    private protected abstract DecoderCpuActivations<T> CreateActivations(int capacityRows, int capacitySequence, bool savesLayers);
    /// <summary>Block <paramref name="layer"/>: BlockInput(layer) → BlockInput(layer + 1), saving what its reverse pass reads.</summary>
    private protected abstract void BlockForward(int layer);
    /// <summary>FinalNorm = norm(Final).</summary>
    private protected abstract void FinalNormForward();
    /// <summary><paramref name="dResidual"/> += d(loss)/d(Final), from Gradient = d(loss)/d(FinalNorm).</summary>
    private protected abstract void FinalNormBackward(T[] dResidual);
    /// <summary><paramref name="dResidual"/>: d(loss)/d(block output) in, d(loss)/d(block input) out.</summary>
    private protected abstract void BlockBackward(int layer, T[] dResidual);

    private protected sealed override void ReleaseActivations() => activations = null;

    /// <summary>
    /// Grows the activations to hold <paramref name="batch"/> (every dimension to the largest seen, so alternating shapes
    /// settle on one capacity). Forward-only passes get activations without per-layer saved tensors until a pass
    /// <paramref name="withGradient"/> needs them; from then on the engine keeps them.
    /// </summary>
    private DecoderCpuActivations<T> Plan(TokenBatch batch, bool withGradient)
    {
        var a = activations;
        int seq = batch.SequenceLength;
        if (a is null || (long)a.Rows * a.Sequence < (long)batch.Rows * seq || a.Sequence < seq || (withGradient && !a.SavesLayers))
            activations = a = GrowActivations(batch.Rows, Math.Max(seq, a?.Sequence ?? 0), withGradient || a?.SavesLayers == true);
        return a;
    }

    // Apart from Plan so that the closure below is allocated only when the activations grow, never in a steady step.
    private DecoderCpuActivations<T> GrowActivations(int rows, int capacitySequence, bool savesLayers)
    {
        long positions = (long)rows * capacitySequence;
        // The floor: the residual stream of every block plus the four [positions, d] buffers every family keeps.
        EnsureHostMemory(rows, positions, (Layers + 4L) * positions * EmbeddingSize,
            () => MeasureActivationBytes(rows, capacitySequence) / sizeof(float) * Unsafe.SizeOf<T>());
        activations = null;
        return CreateActivations(rows, capacitySequence, savesLayers);
    }

    /// <summary>
    /// Bytes of fp32 activations for this capacity: the family's device plan (the same tensors, declared once for the device)
    /// stands in as the estimate, so no size formula is written twice.
    /// </summary>
    private protected abstract long MeasureActivationBytes(int rows, int sequence);

    private protected sealed override T RunForward(TokenBatch batch, bool withGradient, bool countGreedyMatches, bool languageModelHead)
    {
        BatchChecks.DecoderOnly(batch, state.Layout, VocabSize, MaxPositions, requireTargets: languageModelHead);
        var a = Plan(batch, withGradient);
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
        if (activations is not { SavesLayers: true }) throw new InvalidOperationException("The reverse pass needs a forward pass with the gradient first.");
        var dResidual = activations.GradientNext;
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

    /// <summary>Opens a KV-cached decoding session over the prompts loaded now.</summary>
    public IDecodingSession OpenDecoding(int slots, int tokensPerSlot) => new CpuDecodingSession<T>(this, slots, tokensPerSlot);

    /// <summary>Width of one position's cached key (and value) row.</summary>
    private protected abstract int KeyValueWidth { get; }
    private protected abstract CachedScratch<T> CreateCachedScratch(int capacity);
    /// <summary>
    /// Block <paramref name="layer"/> over the packed tokens of <paramref name="s"/>: stores each token's key and value in
    /// <paramref name="cache"/> at its position, attends through the cache, and updates s.Residual in place.
    /// </summary>
    private protected abstract void CachedBlock(int layer, CachedScratch<T> s, KeyValueCache<T> cache);
    /// <summary>y [rows, d] = the final norm of x [rows, d], statistics into <paramref name="s"/>.</summary>
    private protected abstract void CachedFinalNorm(Span<T> y, ReadOnlySpan<T> x, int rows, CachedScratch<T> s);

    internal CachedScratch<T> NewCachedScratch(int capacity) => CreateCachedScratch(capacity);

    // The last session's cache and scratch wait here for the next session: a run that opens session after session
    // (dev evaluation, predict, bench repeats) would otherwise leave hundreds of MB of large-object garbage each time,
    // which the GC collects late enough to triple the process's peak memory.
    private (KeyValueCache<T> Cache, CachedScratch<T> Scratch)? spareDecodingBuffers;

    /// <summary>A cache of at least <paramref name="rows"/> rows and a scratch for at least <paramref name="capacity"/> tokens, the last session's when they are large enough.</summary>
    internal (KeyValueCache<T> Cache, CachedScratch<T> Scratch) RentDecodingBuffers(int rows, int capacity)
    {
        var spare = spareDecodingBuffers;
        spareDecodingBuffers = null;
        var cache = spare is { Cache: var c } && c.Rows >= rows ? c : new KeyValueCache<T>(Layers, rows, KeyValueWidth);
        var scratch = spare is { Scratch: var s } && s.Capacity >= capacity ? s : CreateCachedScratch(capacity);
        return (cache, scratch);
    }

    internal void ReturnDecodingBuffers(KeyValueCache<T> cache, CachedScratch<T> scratch) => spareDecodingBuffers = (cache, scratch);

    /// <summary>
    /// Runs the packed tokens of <paramref name="s"/> through the blocks: token ids (or, when <paramref name="promptVectors"/>,
    /// the prompt vectors at their rows of the prompt table, which are also their cache rows) embedded at their positions.
    /// </summary>
    internal void RunCached(CachedScratch<T> s, KeyValueCache<T> cache, bool promptVectors)
    {
        int d = EmbeddingSize;
        var t = s.Tokens;
        ReadOnlySpan<T> prompts = state.Prompts;
        for (int j = 0; j < t.Count; j++)
        {
            int p = t.Positions[j];
            if ((uint)p >= (uint)MaxPositions) throw new InvalidOperationException($"Position {p} is past the model's {MaxPositions} positions.");
            var vector = promptVectors ? prompts.Slice((t.PromptStart[j] + p) * d, d) : TokenEmbedding.Slice(s.Ids[j] * d, d);
            EmbeddingOps.AddPosition<T>(s.Residual.AsSpan(j * d, d), vector, PositionTable, p);
        }
        for (int l = 0; l < Layers; l++) CachedBlock(l, s, cache);
    }

    /// <summary>logits [rows.Length, V] of the tokens following the packed tokens <paramref name="rows"/> of the last <see cref="RunCached"/>.</summary>
    internal void CachedLogits(CachedScratch<T> s, ReadOnlySpan<int> rows, Span<T> hidden, Span<T> normed, Span<T> logits)
    {
        int d = EmbeddingSize, n = rows.Length;
        for (int r = 0; r < n; r++) s.Residual.AsSpan(rows[r] * d, d).CopyTo(hidden.Slice(r * d, d));
        CachedFinalNorm(normed, hidden, n, s);
        CpuGemm.Gemm(false, true, n, VocabSize, d, T.One, normed, d, HeadWeight, d, T.Zero, logits, VocabSize);
    }
}
