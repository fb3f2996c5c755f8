using System.Numerics;

namespace SoftPrompt.Models;

/// <summary>Seeded Gaussian tensors for random test and benchmark weights, identical whatever the thread count.</summary>
internal static class RandomNormal
{
    /// <summary>
    /// <paramref name="count"/> values ~ N(<paramref name="mean"/>, <paramref name="std"/>²). Box–Muller over a
    /// counter-based generator: element pair j of a tensor depends only on (seed, stream, j), so chunks fill in
    /// parallel and the result does not depend on scheduling. Give every tensor of a model its own stream.
    /// </summary>
    public static T[] Create<T>(int count, double mean, double std, int seed, int stream) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        const int PairsPerChunk = 1 << 15;
        ulong key = SplitMix(((ulong)(uint)seed << 32) | (uint)stream);
        var values = GC.AllocateUninitializedArray<T>(count);
        int pairs = (count + 1) / 2;
        Parallel.For(0, (pairs + PairsPerChunk - 1) / PairsPerChunk, chunk =>
        {
            int end = Math.Min(pairs, (chunk + 1) * PairsPerChunk);
            for (int j = chunk * PairsPerChunk; j < end; j++)
            {
                double u1 = Uniform(key, 2 * (ulong)j), u2 = Uniform(key, 2 * (ulong)j + 1);
                double radius = std * Math.Sqrt(-2 * Math.Log(1 - u1)); // 1 - u1 ∈ (0, 1]: no log(0)
                double angle = 2 * Math.PI * u2;
                values[2 * j] = T.CreateTruncating(mean + radius * Math.Cos(angle));
                if (2 * j + 1 < count) values[2 * j + 1] = T.CreateTruncating(mean + radius * Math.Sin(angle));
            }
        });
        return values;
    }

    /// <summary>53 random bits as a double in [0, 1).</summary>
    private static double Uniform(ulong key, ulong counter) => (SplitMix(key + counter) >> 11) * (1.0 / (1UL << 53));

    /// <summary>SplitMix64's step and finaliser: a cheap bijective 64-bit mix, ample for test weights.</summary>
    private static ulong SplitMix(ulong z)
    {
        z += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
