using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Engines;

/// <summary>
/// Whether each target is the argmax of its teacher-forced logits (exact-match evaluation), decided on the device:
/// the host reads one index per target instead of a chunk's [rows, V] logits.
/// </summary>
internal sealed class DeviceGreedyMatches
{
    private readonly IComputeDevice device;
    private readonly DeviceSpan<int> indices;
    private readonly int[] hostIndices;

    public DeviceGreedyMatches(ArenaCarver carve, int rows)
    {
        device = carve.Device;
        indices = carve.Take<int>("argmax", rows);
        hostIndices = new int[rows];
    }

    /// <summary>matches[r] = argmax(logits[r, :]) == targetIds[r] for the chunk's rows; reading them waits for the device.</summary>
    public void Count(DeviceSpan<float> logits, int rows, int vocab, ReadOnlySpan<int> targetIds, Span<bool> matches)
    {
        RowArgmax.Launch(device, indices, logits, rows, vocab);
        device.CopyToHost(indices.Slice(0, rows), hostIndices.AsSpan(0, rows));
        for (int r = 0; r < rows; r++) matches[r] = hostIndices[r] == targetIds[r];
    }

    /// <summary>argmax[r] = the column of row r's largest logit, for the chunk's rows (decoding); waits for the device.</summary>
    public void Argmax(DeviceSpan<float> logits, int rows, int vocab, Span<int> argmax)
    {
        RowArgmax.Launch(device, indices, logits, rows, vocab);
        device.CopyToHost(indices.Slice(0, rows), argmax[..rows]);
    }
}
