using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// What a decoder-only family's cached step needs, in widths: the residual width, attention heads (query and kv), the
/// query projection's row (GPT-2: the fused q|k|v, 3c; Llama: q), separate k and v rows (Llama; 0 when they are column
/// slices of the fused projection), the MLP's inner width and how many inner buffers it uses (gate and up: 2), whether
/// RoPE needs per-row cos/sin tables, the widest bf16 GEMM operand row (0 with fp32 weights, or where the engine's plan
/// holds the step's operands, as T5's does), whether the LM head weight is bf16 (the plan's head then carves its bf16
/// operands), and whether the inner buffers hold bf16 (the MLP pre-activations of bf16 precision, as the full forward rounds them).
/// </summary>
internal readonly record struct DecodingShape(int Layers, int Width, int Heads, int KeyValueHeads, int HeadSize, int QueryWidth, int KeyValueWidth,
    int InnerWidth, int InnerBuffers, bool RotaryTables, int Bf16OperandWidth, bool Bf16Head, bool Bf16Inner = false)
{
    /// <summary>One cache row: every kv head once (grouped query heads read theirs in place, never repeated).</summary>
    public int CacheWidth => KeyValueHeads * HeadSize;
    public int AttentionWidth => Heads * HeadSize;
}

/// <summary>
/// What an encoder-decoder (T5) session adds to its plan: per decoder layer the cross-attention key and value caches
/// [<paramref name="CacheRows"/>, kv width] (each slot's encoded input, projected once), the map from an encoded batch's
/// rows to those cache rows (up to <paramref name="EncodedRows"/>), and the self-attention bias by distance back
/// [heads, <paramref name="BiasDistances"/>].
/// </summary>
internal readonly record struct CrossAttentionShape(int CacheRows, int EncodedRows, int BiasDistances);

/// <summary>
/// A decoding session's device memory, one arena declared once: per layer the key and value caches [cache rows, kv
/// width] (every prompt's rows, then each slot's own <c>tokensPerSlot</c> rows), and the step buffers for up to
/// <see cref="StepRows"/> rows (a prefill of every slot's whole input, or the prompts when the session opens), reused by
/// every layer and every step; an encoder-decoder session's cross-attention caches too (<see cref="CrossAttentionShape"/>).
/// Nothing is allocated per step.
/// </summary>
internal sealed class DeviceDecodingPlan : IDisposable
{
    /// <summary>Most splits decode attention spreads one (row, head) over: enough blocks to fill a GPU at a few slots.</summary>
    public const int MaxSplits = 32;

    public static DeviceDecodingPlan Allocate(IComputeDevice device, DecodingShape shape, int vocab, int slots, int stepRows, int cacheRows, CrossAttentionShape? cross = null)
        => DeviceArena.Allocate(device, "decoding plan", carve => new DeviceDecodingPlan(carve, shape, vocab, slots, stepRows, cacheRows, cross));

    /// <summary>The plan's layout and size without a device.</summary>
    public static DeviceDecodingPlan Measure(DecodingShape shape, int vocab, int slots, int stepRows, int cacheRows, CrossAttentionShape? cross = null)
        => DeviceArena.Measure("decoding plan", carve => new DeviceDecodingPlan(carve, shape, vocab, slots, stepRows, cacheRows, cross));

    private DeviceDecodingPlan(ArenaCarver carve, DecodingShape shape, int vocab, int slots, int stepRows, int cacheRows, CrossAttentionShape? cross)
    {
        Arena = carve.Arena;
        Shape = shape;
        StepRows = stepRows;
        IndexSections = cross is null ? DecoderOnlyIndexSections : DecoderOnlyIndexSections + 4;
        BiasDistances = cross?.BiasDistances ?? 0;
        // Partials for MaxSplits splits of a decode step (one row per slot); a prefill of more rows uses fewer splits.
        PartialRows = Math.Max(stepRows, slots * MaxSplits);
        long n = stepRows, d = shape.Width;
        DeviceSpan<float> F(string name, long count) => carve.Take<float>(name, count);

        carve.Kind = DeviceMemoryKind.Activations;
        KeyCache = new DeviceSpan<float>[shape.Layers];
        ValueCache = new DeviceSpan<float>[shape.Layers];
        for (int l = 0; l < shape.Layers; l++)
        {
            KeyCache[l] = F($"layers.{l}.k_cache", (long)cacheRows * shape.CacheWidth);
            ValueCache[l] = F($"layers.{l}.v_cache", (long)cacheRows * shape.CacheWidth);
        }
        var c = cross ?? new CrossAttentionShape(0, 0, 0);
        CrossKeyCache = new DeviceSpan<float>[cross is null ? 0 : shape.Layers];
        CrossValueCache = new DeviceSpan<float>[CrossKeyCache.Length];
        for (int l = 0; l < CrossKeyCache.Length; l++)
        {
            CrossKeyCache[l] = F($"layers.{l}.cross_k_cache", (long)c.CacheRows * shape.CacheWidth);
            CrossValueCache[l] = F($"layers.{l}.cross_v_cache", (long)c.CacheRows * shape.CacheWidth);
        }
        DistanceBias = F("self_attention.distance_bias", (long)shape.Heads * c.BiasDistances);

        carve.Kind = DeviceMemoryKind.Workspace;
        StepIndices = carve.Take<int>("step_indices", IndexSections * n);
        EncodedToCacheRows = carve.Take<int>("encoded_to_cache_rows", c.EncodedRows);
        Hidden = F("hidden", n * d); Middle = F("middle", n * d); Norm = F("norm", n * d);
        Mean = F("norm.mean", n); Rstd = F("norm.rstd", n);
        Query = F("q", n * shape.QueryWidth); Key = F("k", n * shape.KeyValueWidth); Value = F("v", n * shape.KeyValueWidth);
        Attention = F("attention", n * shape.AttentionWidth);
        long inner = n * shape.InnerWidth, inner2 = shape.InnerBuffers > 1 ? inner : 0;
        Inner = F("inner", shape.Bf16Inner ? 0 : inner); Inner2 = F("inner2", shape.Bf16Inner ? 0 : inner2);
        InnerBf16 = carve.Take<ushort>("inner_bf16", shape.Bf16Inner ? inner : 0); Inner2Bf16 = carve.Take<ushort>("inner2_bf16", shape.Bf16Inner ? inner2 : 0);
        long half = shape.RotaryTables ? shape.HeadSize / 2 : 0;
        RopeCos = F("rope.cos", n * half); RopeSin = F("rope.sin", n * half);
        long partials = (long)PartialRows * shape.Heads;
        PartialOut = F("attention.partial_out", partials * shape.HeadSize);
        PartialMax = F("attention.partial_max", partials);
        PartialSum = F("attention.partial_sum", partials);
        Bf16Operands = carve.Take<ushort>("bf16_operands", n * shape.Bf16OperandWidth);
        Head = new DeviceLanguageModelHead(carve, shape.Width, vocab, slots, shape.Bf16Head);
    }

    /// <summary>The step index sections, each [rows]: token (−1: a prompt row), prompt row, position, then the key ranges [rows, 4].</summary>
    public const int DecoderOnlyIndexSections = 7;

    /// <summary>Index sections per step row: <see cref="DecoderOnlyIndexSections"/>, then (encoder-decoder) the cross-attention key ranges [rows, 4].</summary>
    public int IndexSections { get; }
    /// <summary>Per layer, the cross-attention keys and values of each slot's encoded input (none in a decoder-only plan).</summary>
    public DeviceSpan<float>[] CrossKeyCache { get; }
    public DeviceSpan<float>[] CrossValueCache { get; }
    /// <summary>Where an encoded batch's row i goes in the cross-attention caches (uploaded per encoding).</summary>
    public DeviceSpan<int> EncodedToCacheRows { get; }
    /// <summary>[heads, <see cref="BiasDistances"/>]: the decoder self-attention bias of a key that many positions before its query.</summary>
    public DeviceSpan<float> DistanceBias { get; }
    public int BiasDistances { get; }

    public DeviceArena Arena { get; }
    public DecodingShape Shape { get; }
    public int StepRows { get; }
    /// <summary>(row, split) pairs the attention partials hold per head.</summary>
    public int PartialRows { get; }
    public DeviceSpan<float>[] KeyCache { get; }
    public DeviceSpan<float>[] ValueCache { get; }
    public DeviceSpan<int> StepIndices { get; }
    /// <summary>The residual stream: block input and output (in and out of <see cref="Middle"/>, never aliased).</summary>
    public DeviceSpan<float> Hidden { get; }
    public DeviceSpan<float> Middle { get; }
    /// <summary>A norm's output (the final norm's too, which the head reads).</summary>
    public DeviceSpan<float> Norm { get; }
    public DeviceSpan<float> Mean { get; }
    public DeviceSpan<float> Rstd { get; }
    public DeviceSpan<float> Query { get; }
    public DeviceSpan<float> Key { get; }
    public DeviceSpan<float> Value { get; }
    public DeviceSpan<float> Attention { get; }
    public DeviceSpan<float> Inner { get; }
    public DeviceSpan<float> Inner2 { get; }
    /// <summary>The MLP's pre-activations in bf16 precision (<see cref="DecodingShape.Bf16Inner"/>; then <see cref="Inner"/> and <see cref="Inner2"/> are empty).</summary>
    public DeviceSpan<ushort> InnerBf16 { get; }
    public DeviceSpan<ushort> Inner2Bf16 { get; }
    /// <summary>RoPE's cos and sin rows at each step row's own position [rows, hd/2].</summary>
    public DeviceSpan<float> RopeCos { get; }
    public DeviceSpan<float> RopeSin { get; }
    public DeviceSpan<float> PartialOut { get; }
    public DeviceSpan<float> PartialMax { get; }
    public DeviceSpan<float> PartialSum { get; }
    public DeviceSpan<ushort> Bf16Operands { get; }
    public DeviceLanguageModelHead Head { get; }

    /// <summary>The step's index sections for <paramref name="rows"/> rows, packed one after another (one upload).</summary>
    public StepIndexSpans Indices(int rows)
    {
        DeviceSpan<int> Section(int i, int width = 1) => StepIndices.Slice((long)i * rows, (long)width * rows);
        return new(Section(0), Section(1), Section(2), Section(3, 4), IndexSections > DecoderOnlyIndexSections ? Section(7, 4) : default);
    }

    /// <summary>How decode attention splits a step's keys: as many splits as its longest key length needs, within the partials.</summary>
    public (int SplitSize, int Splits) AttentionSplits(int rows, int longestKeyLength)
        => DecodeAttention.Splits(longestKeyLength, Math.Clamp(PartialRows / Math.Max(rows, 1), 1, MaxSplits));

    public void Dispose() => Arena.Dispose();
}

/// <summary>
/// A step's indices on the device: each row's token (−1: prompt row), prompt row, position, key range [rows, 4], and (an
/// encoder-decoder plan) its cross-attention key range over its slot's encoded input [rows, 4].
/// </summary>
internal readonly record struct StepIndexSpans(DeviceSpan<int> Tokens, DeviceSpan<int> PromptRows, DeviceSpan<int> Positions, DeviceSpan<int> RowKeys, DeviceSpan<int> CrossRowKeys);
