using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// <see cref="SharedPromptRows"/>' maps on a device, for the engines that compute each prompt's positions once per batch:
/// built on the host and copied up once per step into buffers sized for the plan's capacity (one int allocation).
/// </summary>
internal sealed class DeviceSharedRows : IDisposable
{
    private readonly IComputeDevice device;
    private readonly DeviceBuffer<int> ints;
    private long offset;

    public DeviceSharedRows(IComputeDevice device, int rows, int positions, PromptLayout layout)
    {
        this.device = device;
        long n = positions, promptRows = layout.TotalLength;
        ints = device.Allocate<int>(A(n) * 6 + A(n + 1) * 2 + A(promptRows + 1) + A(Math.Max(1, promptRows)));
        Bytes = ints.Length * sizeof(int);
        FullToShared = I(n); FullToSharedOrZero = I(n); SharedToFull = I(n); ReduceStarts = I(n + 1); ReduceIndex = I(n);
        TargetRows = I(n); TargetStarts = I(n + 1); TargetIndex = I(n); PromptStarts = I(promptRows + 1); PromptIndex = I(Math.Max(1, promptRows));
        Host = new SharedPromptRows(rows, positions, layout);
        HostTargetRows = new int[n];
    }

    private static long A(long count) => (count + 63) / 64 * 64;
    private DeviceSpan<int> I(long count) { var s = ints.Slice(offset, count); offset += A(count); return s; }

    public long Bytes { get; }
    public SharedPromptRows Host { get; }
    public PromptLayout Layout => Host.Layout;
    /// <summary>Rows of the shared layout for the last batch.</summary>
    public int Shared => Host.Shared;
    public DeviceSpan<int> FullToShared { get; }
    public DeviceSpan<int> FullToSharedOrZero { get; }
    public DeviceSpan<int> SharedToFull { get; }
    public DeviceSpan<int> ReduceStarts { get; }
    public DeviceSpan<int> ReduceIndex { get; }
    /// <summary>The shared row each target (or, for decoding, each row's last position) is predicted from.</summary>
    public DeviceSpan<int> TargetRows { get; }
    public DeviceSpan<int> TargetStarts { get; }
    public DeviceSpan<int> TargetIndex { get; }
    public DeviceSpan<int> PromptStarts { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public int[] HostTargetRows { get; }

    /// <summary>Builds the maps for <paramref name="batch"/> (whose targets sit at <paramref name="targetPositions"/>, full positions in order) and copies them up.</summary>
    public void Upload(TokenBatch batch, ReadOnlySpan<int> targetPositions)
    {
        var maps = Host;
        maps.Build(batch, targetPositions);
        int full = maps.Full, shared = maps.Shared, count = targetPositions.Length, promptRows = Layout.TotalLength;
        for (int j = 0; j < count; j++) HostTargetRows[j] = maps.FullToShared[targetPositions[j]];
        device.CopyToDevice<int>(HostTargetRows.AsSpan(0, count), TargetRows.Slice(0, count));
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

    /// <summary>For decoding: row b's last position ((b, P_b + L_b − 1)) as a shared row, copied up into <see cref="TargetRows"/>.</summary>
    public void UploadLastPositions(TokenBatch batch)
    {
        for (int row = 0; row < batch.Rows; row++)
            HostTargetRows[row] = Host.FullToShared[row * batch.SequenceLength + batch.RowPromptLength(row) + batch.Lengths[row] - 1];
        device.CopyToDevice<int>(HostTargetRows.AsSpan(0, batch.Rows), TargetRows.Slice(0, batch.Rows));
    }

    public void Dispose() => ints.Dispose();
}
