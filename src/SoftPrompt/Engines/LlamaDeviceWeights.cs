using SoftPrompt.Cuda;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Engines;

/// <summary>Frozen Llama-style weights on a device, plus RoPE's cos/sin tables: one allocation carved into named tensors, uploaded once.</summary>
internal sealed class LlamaDeviceWeights : IDisposable
{
    private readonly DeviceBuffer<float> arena;

    public LlamaDeviceWeights(IComputeDevice device, LlamaWeights<float> host)
    {
        var config = host.Config;
        var (cos, sin) = LlamaRope.Tables<float>(config.InverseFrequencies<float>(), config.SequenceLimit);
        long total = Aligned(host.TokenEmbedding.Length) + Aligned(host.LanguageModelHead?.Length ?? 0) + Aligned(host.FinalNormWeight.Length)
            + Aligned(cos.Length) + Aligned(sin.Length);
        foreach (var l in host.Layers)
            foreach (var t in LayerTensors(l)) total += Aligned(t.Length);
        arena = device.Allocate<float>(total);
        long offset = 0;
        DeviceSpan<float> Put(float[] values)
        {
            var span = arena.Slice(offset, values.Length);
            device.CopyToDevice<float>(values, span);
            offset += Aligned(values.Length);
            return span;
        }
        TokenEmbedding = Put(host.TokenEmbedding);
        HeadWeight = host.LanguageModelHead is { } head ? Put(head) : TokenEmbedding;
        FinalNormWeight = Put(host.FinalNormWeight);
        RopeCos = Put(cos);
        RopeSin = Put(sin);
        Layers = [.. host.Layers.Select(l => new Layer(Put(l.AttentionNormWeight), Put(l.Query), Put(l.Key), Put(l.Value), Put(l.Output),
            Put(l.MlpNormWeight), Put(l.Gate), Put(l.Up), Put(l.Down)))];
        Bytes = total * sizeof(float);
    }

    /// <summary>Keeps every tensor 256-byte aligned (64 floats) so vector loads and cuBLAS get aligned pointers.</summary>
    private static long Aligned(long count) => (count + 63) / 64 * 64;

    private static float[][] LayerTensors(LlamaLayerWeights<float> l) =>
        [l.AttentionNormWeight, l.Query, l.Key, l.Value, l.Output, l.MlpNormWeight, l.Gate, l.Up, l.Down];

    public long Bytes { get; }
    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or the token embedding when tied.</summary>
    public DeviceSpan<float> HeadWeight { get; }
    public DeviceSpan<float> FinalNormWeight { get; }
    /// <summary>[max_position_embeddings, head_dim/2] each, from <see cref="LlamaConfig.InverseFrequencies{T}"/>.</summary>
    public DeviceSpan<float> RopeCos { get; }
    public DeviceSpan<float> RopeSin { get; }
    public Layer[] Layers { get; }

    /// <summary>nn.Linear weights [out, in]: q [a, d], k and v [kv, d], o [d, a], gate and up [ff, d], down [d, ff].</summary>
    public sealed record Layer(DeviceSpan<float> AttentionNormWeight, DeviceSpan<float> Query, DeviceSpan<float> Key, DeviceSpan<float> Value,
        DeviceSpan<float> Output, DeviceSpan<float> MlpNormWeight, DeviceSpan<float> Gate, DeviceSpan<float> Up, DeviceSpan<float> Down);

    public void Dispose() => arena.Dispose();
}
