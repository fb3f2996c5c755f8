using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// What every decoder-only device plan holds besides its family's blocks: the batch's inputs and shared-row maps, the LM
/// head, the final norm's input and output, and the reverse pass's running gradients, all [shared rows, d] in the
/// shared layout (each prompt's positions once, <see cref="SharedPromptRows"/>). One arena per (rows, positions) capacity.
/// </summary>
internal abstract class DecoderDevicePlan : IDisposable
{
    private protected DecoderDevicePlan(ArenaCarver carve, int rows, int positions, int width, int vocab, PromptLayout layout, bool bf16, bool recomputes)
    {
        Arena = carve.Arena;
        Recomputes = recomputes;
        Rows = rows;
        Positions = positions;
        long n = positions, d = width;
        carve.Kind = DeviceMemoryKind.Activations;
        Final = carve.Take<float>("final", n * d);
        FinalNorm = carve.Take<float>("final_norm.output", n * d);
        carve.Kind = DeviceMemoryKind.Workspace;
        Norm = carve.Take<float>("norm", n * d);
        Gradient = carve.Take<float>("gradient", n * d);
        GradientNext = carve.Take<float>("gradient_next", n * d);
        // The residual gradient rounded by the norm backward that updates it, for the GEMM that reads it next (the
        // projection into the residual stream, in this layer or the one below): its own buffer, since a recomputed forward
        // writes the family's bf16 operand buffer between the two.
        ResidualGradientBf16 = carve.Take<ushort>("residual_gradient_bf16", bf16 ? n * d : 0);
        Inputs = new DecoderBatchInputs(carve, rows, positions, layout);
        Head = new DeviceLanguageModelHead(carve, width, vocab, positions, bf16);
    }

    public DeviceArena Arena { get; }
    /// <summary>Every layer's saved tensors but its input share one set: the reverse pass runs each layer's forward again first.</summary>
    public bool Recomputes { get; }
    public int Rows { get; }
    /// <summary>Most rows·sequence positions a batch may have.</summary>
    public int Positions { get; }
    public PromptLayout Layout => Inputs.Layout;
    /// <summary>The batch's token ids, prompts and shared-row maps.</summary>
    public DecoderBatchInputs Inputs { get; }
    public DeviceLanguageModelHead Head { get; }
    /// <summary>The last block's output (the final norm's input) and the final norm's output.</summary>
    public DeviceSpan<float> Final { get; }
    public DeviceSpan<float> FinalNorm { get; }
    /// <summary>A norm's output within a block, and its gradient on the way back.</summary>
    public DeviceSpan<float> Norm { get; }
    /// <summary>d(loss)/d(final norm output), then the residual stream's gradient on the way back.</summary>
    public DeviceSpan<float> Gradient { get; }
    public DeviceSpan<float> GradientNext { get; }
    /// <summary>bf16 precision only: <see cref="Gradient"/>'s bf16 copy, written by the norm backward that last updated it.</summary>
    public DeviceSpan<ushort> ResidualGradientBf16 { get; }

    /// <summary>Block <paramref name="layer"/>'s input; <see cref="Final"/> past the last block.</summary>
    public abstract DeviceSpan<float> BlockInput(int layer);
    /// <summary>[rows·sequence, d] scratch in the full layout: the embeddings at the start of a step, the logits' hidden states for <c>Logits</c>.</summary>
    public abstract DeviceSpan<float> FullEmbeddings { get; }
    /// <summary>[targets, d] scratch free while the LM head runs: each target's d(hidden) before it is summed onto its shared row.</summary>
    public abstract DeviceSpan<float> TargetGradients { get; }

    public virtual bool Fits(TokenBatch batch, PromptLayout layout) => Rows >= batch.Rows && Positions >= batch.Rows * batch.SequenceLength && Layout.Equals(layout);

    public void Dispose() => Arena.Dispose();
}
