using System.Numerics;

namespace SoftPrompt.Models.Llama;

/// <summary>
/// RoPE's position tables, the model math shared by the CPU ops (<c>Cpu.RopeOps</c>) and the kernels' launchers: angle
/// p·ω_j for position p and frequency ω_j = <see cref="LlamaConfig.InverseFrequencies{T}"/>[j].
/// </summary>
public static class LlamaRope
{
    /// <summary>cos and sin tables [positions, hd/2]: angle p·ω_j computed in <typeparamref name="T"/> (as HF does in its dtype).</summary>
    public static (T[] Cos, T[] Sin) Tables<T>(ReadOnlySpan<T> inverseFrequencies, int positions) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int half = inverseFrequencies.Length;
        var cos = new T[positions * half];
        var sin = new T[positions * half];
        for (int p = 0; p < positions; p++)
            for (int j = 0; j < half; j++)
            {
                T angle = T.CreateChecked(p) * inverseFrequencies[j];
                cos[p * half + j] = T.Cos(angle);
                sin[p * half + j] = T.Sin(angle);
            }
        return (cos, sin);
    }
}
