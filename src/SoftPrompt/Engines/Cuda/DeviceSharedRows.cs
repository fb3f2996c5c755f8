using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// <see cref="SharedPromptRows"/>' maps on a device, for the engines that compute each prompt's positions once per batch:
/// built on the host and copied up once per step into tensors of the plan's arena, sized for its capacity.
/// </summary>
internal sealed class DeviceSharedRows
{
    private readonly IComputeDevice device;

    public DeviceSharedRows(ArenaCarver carve, int rows, int positions, PromptLayout layout)
    {
        device = carve.Device;
        long n = positions, promptRows = layout.TotalLength;
        DeviceSpan<int> I(string name, long count) => carve.Take<int>("shared_rows." + name, count);
        FullToShared = I("full_to_shared", n); FullToSharedOrZero = I("full_to_shared_or_zero", n); SharedToFull = I("shared_to_full", n);
        ReduceStarts = I("reduce_starts", n + 1); ReduceIndex = I("reduce_index", n);
        TargetStarts = I("target_starts", n + 1); TargetIndex = I("target_index", n);
        PromptStarts = I("prompt_starts", promptRows + 1); PromptIndex = I("prompt_index", Math.Max(1, promptRows));
        Host = new SharedPromptRows(rows, positions, layout);
    }

    public SharedPromptRows Host { get; }
    public PromptLayout Layout => Host.Layout;
    /// <summary>Rows of the shared layout for the last batch.</summary>
    public int Shared => Host.Shared;
    public DeviceSpan<int> FullToShared { get; }
    public DeviceSpan<int> FullToSharedOrZero { get; }
    public DeviceSpan<int> SharedToFull { get; }
    public DeviceSpan<int> ReduceStarts { get; }
    public DeviceSpan<int> ReduceIndex { get; }
    public DeviceSpan<int> TargetStarts { get; }
    public DeviceSpan<int> TargetIndex { get; }
    public DeviceSpan<int> PromptStarts { get; }
    public DeviceSpan<int> PromptIndex { get; }

    /// <summary>Builds the maps for <paramref name="batch"/> (whose targets sit at <paramref name="targetPositions"/>, full positions in order) and copies them up.</summary>
    public void Upload(TokenBatch batch, ReadOnlySpan<int> targetPositions)
    {
        var maps = Host;
        maps.Build(batch, targetPositions);
        int full = maps.Full, shared = maps.Shared, count = targetPositions.Length, promptRows = Layout.TotalLength;
        device.CopyToDevice<int>(maps.FullToShared.AsSpan(0, full), FullToShared.Slice(0, full));
        device.CopyToDevice<int>(maps.FullToSharedOrZero.AsSpan(0, full), FullToSharedOrZero.Slice(0, full));
        device.CopyToDevice<int>(maps.SharedToFull.AsSpan(0, shared), SharedToFull.Slice(0, shared));
        device.CopyToDevice<int>(maps.ReduceStarts.AsSpan(0, shared + 1), ReduceStarts.Slice(0, shared + 1));
        device.CopyToDevice<int>(maps.ReduceIndex.AsSpan(0, maps.ReduceStarts[shared]), ReduceIndex.Slice(0, maps.ReduceStarts[shared]));
        device.CopyToDevice<int>(maps.TargetStarts.AsSpan(0, shared + 1), TargetStarts.Slice(0, shared + 1));
        device.CopyToDevice<int>(maps.TargetIndex.AsSpan(0, count), TargetIndex.Slice(0, count));
        device.CopyToDevice<int>(maps.PromptStarts.AsSpan(0, promptRows + 1), PromptStarts.Slice(0, promptRows + 1));
        device.CopyToDevice<int>(maps.PromptIndex.AsSpan(0, maps.PromptStarts[promptRows]), PromptIndex.Slice(0, maps.PromptStarts[promptRows]));
    }
}
