using SoftPrompt.Cuda;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>Frozen GPT-2 weights on a device: one allocation carved into named tensors, uploaded once.</summary>
internal sealed class Gpt2DeviceWeights : IDisposable
{
    private readonly DeviceBuffer<float> arena;

    public Gpt2DeviceWeights(IComputeDevice device, Gpt2Weights<float> host)
    {
        long total = host.TokenEmbedding.Length + host.PositionEmbedding.Length + host.FinalNormWeight.Length + host.FinalNormBias.Length;
        foreach (var l in host.Layers)
            foreach (var t in LayerTensors(l)) total += Aligned(t.Length);
        total += 4 * 64;
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
        PositionEmbedding = Put(host.PositionEmbedding);
        FinalNormWeight = Put(host.FinalNormWeight);
        FinalNormBias = Put(host.FinalNormBias);
        Layers = host.Layers.Select(l => new Layer(Put(l.Norm1Weight), Put(l.Norm1Bias), Put(l.QkvWeight), Put(l.QkvBias),
            Put(l.AttentionProjectionWeight), Put(l.AttentionProjectionBias), Put(l.Norm2Weight), Put(l.Norm2Bias),
            Put(l.FcWeight), Put(l.FcBias), Put(l.FcProjectionWeight), Put(l.FcProjectionBias))).ToArray();
        Bytes = total * sizeof(float);
    }

    /// <summary>Keeps every tensor 256-byte aligned (64 floats) so vector loads and cuBLAS get aligned pointers.</summary>
    private static long Aligned(long count) => (count + 63) / 64 * 64;

    private static float[][] LayerTensors(Gpt2LayerWeights<float> l) =>
        [l.Norm1Weight, l.Norm1Bias, l.QkvWeight, l.QkvBias, l.AttentionProjectionWeight, l.AttentionProjectionBias,
         l.Norm2Weight, l.Norm2Bias, l.FcWeight, l.FcBias, l.FcProjectionWeight, l.FcProjectionBias];

    public long Bytes { get; }
    public DeviceSpan<float> TokenEmbedding { get; }
    public DeviceSpan<float> PositionEmbedding { get; }
    public DeviceSpan<float> FinalNormWeight { get; }
    public DeviceSpan<float> FinalNormBias { get; }
    public Layer[] Layers { get; }

    public sealed record Layer(DeviceSpan<float> Norm1Weight, DeviceSpan<float> Norm1Bias, DeviceSpan<float> QkvWeight, DeviceSpan<float> QkvBias,
        DeviceSpan<float> AttentionProjectionWeight, DeviceSpan<float> AttentionProjectionBias, DeviceSpan<float> Norm2Weight, DeviceSpan<float> Norm2Bias,
        DeviceSpan<float> FcWeight, DeviceSpan<float> FcBias, DeviceSpan<float> FcProjectionWeight, DeviceSpan<float> FcProjectionBias);

    public void Dispose() => arena.Dispose();
}
