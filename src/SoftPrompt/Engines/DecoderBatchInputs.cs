using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// A decoder-only batch on a device: token ids, each row's prompt, the target ids in position order and the
/// shared-row maps (<see cref="DeviceSharedRows"/>, which also place each target on its shared row), plus the host
/// mirrors scoring reads. Its tensors are carved from the plan's arena for a (rows, positions) capacity and refilled every step.
/// </summary>
internal sealed class DecoderBatchInputs
{
    private readonly IComputeDevice device;

    public DecoderBatchInputs(ArenaCarver carve, int rows, int positions, PromptLayout layout)
    {
        device = carve.Device;
        long n = positions;
        Tokens = carve.Take<int>("tokens", n);
        TargetIds = carve.Take<int>("target_ids", n);
        PromptIndex = carve.Take<int>("prompt_index", rows);
        SharedRows = new DeviceSharedRows(carve, rows, positions, layout);
        HostTargetPositions = new int[n];
        HostTargetIds = new int[n];
        HostTargetRow = new int[n];
    }

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
}
