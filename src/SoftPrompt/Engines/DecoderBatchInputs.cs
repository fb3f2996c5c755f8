using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// A decoder-only batch on a device: token ids, each row's prompt, the target ids in position order and the
/// shared-row maps (<see cref="DeviceSharedRows"/>, which also place each target on its shared row), plus the host
/// mirrors scoring reads. Buffers are sized once for a (rows, positions) capacity and refilled every step.
/// </summary>
internal sealed class DecoderBatchInputs : IDisposable
{
    private readonly IComputeDevice device;
    private readonly DeviceBuffer<int> ints;

    public DecoderBatchInputs(IComputeDevice device, int rows, int positions, PromptLayout layout)
    {
        this.device = device;
        long n = positions, aligned = (n + 63) / 64 * 64;
        ints = device.Allocate<int>(2 * aligned + rows);
        Tokens = ints.Slice(0, n);
        TargetIds = ints.Slice(aligned, n);
        PromptIndex = ints.Slice(2 * aligned, rows);
        SharedRows = new DeviceSharedRows(device, rows, positions, layout);
        Bytes = ints.Length * sizeof(int) + SharedRows.Bytes;
        HostTargetPositions = new int[n];
        HostTargetIds = new int[n];
        HostTargetRow = new int[n];
    }

    public long Bytes { get; }
    public DeviceSpan<int> Tokens { get; }
    public DeviceSpan<int> TargetIds { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public DeviceSharedRows SharedRows { get; }
    public PromptLayout Layout => SharedRows.Layout;
    public int TargetCount { get; private set; }
    /// <summary>Flattened full positions (row·T + t) of the last batch's targets, their ids and batch rows.</summary>
    public int[] HostTargetPositions { get; }
    public int[] HostTargetIds { get; }
    public int[] HostTargetRow { get; }

    public void Upload(TokenBatch batch)
    {
        int seq = batch.SequenceLength, n = batch.Rows * seq, count = 0;
        for (int pos = 0; pos < n; pos++)
        {
            int target = batch.Targets[pos];
            if (target == TokenBatch.Ignore) continue;
            HostTargetPositions[count] = pos;
            HostTargetIds[count] = target;
            HostTargetRow[count] = pos / seq;
            count++;
        }
        TargetCount = count;
        int tokens = batch.Rows * batch.TokenLength;
        device.CopyToDevice<int>(batch.Tokens.AsSpan(0, tokens), Tokens.Slice(0, tokens));
        device.CopyToDevice<int>(batch.PromptIndex.AsSpan(0, batch.Rows), PromptIndex.Slice(0, batch.Rows));
        device.CopyToDevice<int>(HostTargetIds.AsSpan(0, count), TargetIds.Slice(0, count));
        SharedRows.Upload(batch, HostTargetPositions.AsSpan(0, count));
    }

    public void Dispose()
    {
        ints.Dispose();
        SharedRows.Dispose();
    }
}
