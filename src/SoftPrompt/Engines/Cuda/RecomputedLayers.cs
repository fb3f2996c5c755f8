using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// Carves a stack's per-layer activations: every layer's input, then each layer's other saved tensors — its own, or, when
/// the plan recomputes, one set all layers share (the reverse pass refills it by running the layer's forward again).
/// </summary>
internal static class RecomputedLayers
{
    /// <param name="saved">A layer's saved tensors but its input, named for layer <c>l</c>, or for the shared set when given null.</param>
    public static TLayer[] Carve<TLayer>(int layers, bool recomputes, Func<int, DeviceSpan<float>> input, Func<int?, TLayer> saved,
        Func<TLayer, DeviceSpan<float>, TLayer> withInput)
    {
        var inputs = new DeviceSpan<float>[layers];
        for (int l = 0; l < layers; l++) inputs[l] = input(l);
        TLayer? shared = recomputes && layers > 0 ? saved(null) : default;
        var result = new TLayer[layers];
        for (int l = 0; l < layers; l++) result[l] = withInput(recomputes ? shared! : saved(l), inputs[l]);
        return result;
    }

    /// <summary>Name prefix of layer <paramref name="layer"/>'s saved tensors, or of the set recomputing layers share.</summary>
    public static string Prefix(string stack, int? layer) => layer is { } l ? $"{stack}.{l}." : $"{stack}.recomputed.";
}
