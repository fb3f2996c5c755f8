using SoftPrompt.Cuda;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>Frozen T5 weights on a device: one allocation carved into named tensors, uploaded once. Layouts as on the host ([out, in]).</summary>
internal sealed class T5DeviceWeights : IDisposable
{
    private readonly DeviceBuffer<float> arena;
    private long offset;

    public T5DeviceWeights(IComputeDevice device, T5Weights<float> host)
    {
        var all = new List<float[]> { host.TokenEmbedding, host.EncoderRelativeBias, host.DecoderRelativeBias, host.EncoderFinalNormWeight, host.DecoderFinalNormWeight };
        if (host.LanguageModelHead is not null) all.Add(host.LanguageModelHead);
        foreach (var l in host.EncoderLayers)
        {
            all.AddRange([l.SelfAttentionNormWeight, l.FeedForwardNormWeight]);
            all.AddRange(Tensors(l.SelfAttention));
            all.AddRange(Tensors(l.FeedForward));
        }
        foreach (var l in host.DecoderLayers)
        {
            all.AddRange([l.SelfAttentionNormWeight, l.CrossAttentionNormWeight, l.FeedForwardNormWeight]);
            all.AddRange(Tensors(l.SelfAttention));
            all.AddRange(Tensors(l.CrossAttention));
            all.AddRange(Tensors(l.FeedForward));
        }
        long total = 64;
        foreach (var t in all) total += Aligned(t.Length);
        arena = device.Allocate<float>(total);
        Bytes = total * sizeof(float);

        DeviceSpan<float> Put(float[] values)
        {
            var span = arena.Slice(offset, values.Length);
            device.CopyToDevice<float>(values, span);
            offset += Aligned(values.Length);
            return span;
        }
        Attention Att(T5AttentionWeights<float> w) => new(Put(w.Query), Put(w.Key), Put(w.Value), Put(w.Output));
        FeedForward Ff(T5FeedForwardWeights<float> w) => new(Put(w.Input), w.Linear is null ? default : Put(w.Linear), Put(w.Output));

        TokenEmbedding = Put(host.TokenEmbedding);
        Head = host.LanguageModelHead is null ? TokenEmbedding : Put(host.LanguageModelHead);
        EncoderRelativeBias = Put(host.EncoderRelativeBias);
        DecoderRelativeBias = Put(host.DecoderRelativeBias);
        EncoderFinalNormWeight = Put(host.EncoderFinalNormWeight);
        DecoderFinalNormWeight = Put(host.DecoderFinalNormWeight);
        EncoderLayers = host.EncoderLayers.Select(l => new EncoderLayer(Put(l.SelfAttentionNormWeight), Att(l.SelfAttention), Put(l.FeedForwardNormWeight), Ff(l.FeedForward))).ToArray();
        DecoderLayers = host.DecoderLayers.Select(l => new DecoderLayer(Put(l.SelfAttentionNormWeight), Att(l.SelfAttention), Put(l.CrossAttentionNormWeight),
            Att(l.CrossAttention), Put(l.FeedForwardNormWeight), Ff(l.FeedForward))).ToArray();
    }

    private static float[][] Tensors(T5AttentionWeights<float> w) => [w.Query, w.Key, w.Value, w.Output];
    private static float[][] Tensors(T5FeedForwardWeights<float> w) => w.Linear is null ? [w.Input, w.Output] : [w.Input, w.Linear, w.Output];

    /// <summary>Keeps every tensor 256-byte aligned (64 floats).</summary>
    private static long Aligned(long count) => (count + 63) / 64 * 64;

    public readonly record struct Attention(DeviceSpan<float> Query, DeviceSpan<float> Key, DeviceSpan<float> Value, DeviceSpan<float> Output);
    /// <summary>Input: wi or wi_0 [ff, d]; Linear: wi_1 [ff, d] (empty for v1.0); Output: wo [d, ff].</summary>
    public readonly record struct FeedForward(DeviceSpan<float> Input, DeviceSpan<float> Linear, DeviceSpan<float> Output);
    public readonly record struct EncoderLayer(DeviceSpan<float> SelfAttentionNormWeight, Attention SelfAttention, DeviceSpan<float> FeedForwardNormWeight, FeedForward FeedForward);
    public readonly record struct DecoderLayer(DeviceSpan<float> SelfAttentionNormWeight, Attention SelfAttention, DeviceSpan<float> CrossAttentionNormWeight,
        Attention CrossAttention, DeviceSpan<float> FeedForwardNormWeight, FeedForward FeedForward);

    public DeviceSpan<float> TokenEmbedding { get; }
    /// <summary>lm_head [V, d], or the shared embedding when tied.</summary>
    public DeviceSpan<float> Head { get; }
    public DeviceSpan<float> EncoderRelativeBias { get; }
    public DeviceSpan<float> DecoderRelativeBias { get; }
    public DeviceSpan<float> EncoderFinalNormWeight { get; }
    public DeviceSpan<float> DecoderFinalNormWeight { get; }
    public EncoderLayer[] EncoderLayers { get; }
    public DecoderLayer[] DecoderLayers { get; }
    public long Bytes { get; }

    public void Dispose() => arena.Dispose();
}
