using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// A decoder-only batch on a device: token ids, each row's prompt and the shared-row maps (<see cref="DeviceSharedRows"/>),
/// with the targets handed to the LM head (each on its shared row). Its tensors are carved from the plan's arena for a
/// (rows, positions) capacity and refilled every step.
/// </summary>
internal sealed class DecoderBatchInputs
{
    private readonly IComputeDevice device;
    private readonly int[] hostTargetPositions;

    public DecoderBatchInputs(ArenaCarver carve, int rows, int positions, PromptLayout layout)
    {
        device = carve.Device;
        Tokens = carve.Take<int>("tokens", positions);
        PromptIndex = carve.Take<int>("prompt_index", rows);
        SharedRows = new DeviceSharedRows(carve, rows, positions, layout);
        hostTargetPositions = new int[positions];
    }

    public DeviceSpan<int> Tokens { get; }
    public DeviceSpan<int> PromptIndex { get; }
    public DeviceSharedRows SharedRows { get; }
    public PromptLayout Layout => SharedRows.Layout;

    /// <summary>Copies the batch up and gives <paramref name="head"/> its targets in position order, each read from its shared row.</summary>
    public void Upload(TokenBatch batch, DeviceLanguageModelHead head)
    {
        int seq = batch.SequenceLength, n = batch.Rows * seq, count = 0;
        for (int pos = 0; pos < n; pos++)
        {
            int target = batch.Targets[pos];
            if (target == TokenBatch.Ignore) continue;
            hostTargetPositions[count] = pos;
            head.HostTargetIds[count] = target;
            head.HostTargetRow[count] = pos / seq;
            count++;
        }
        int tokens = batch.Rows * batch.TokenLength;
        device.CopyToDevice<int>(batch.Tokens.AsSpan(0, tokens), Tokens.Slice(0, tokens));
        device.CopyToDevice<int>(batch.PromptIndex.AsSpan(0, batch.Rows), PromptIndex.Slice(0, batch.Rows));
        var targetPositions = hostTargetPositions.AsSpan(0, count);
        SharedRows.Upload(batch, targetPositions);
        for (int j = 0; j < count; j++) head.HostHiddenRows[j] = SharedRows.Host.FullToShared[targetPositions[j]];
        head.SetTargets(count);
    }

    /// <summary>For decoding: row b's last position ((b, P_b + L_b − 1)) as the shared row the head reads, for each batch row.</summary>
    public void SetLastPositions(TokenBatch batch, DeviceLanguageModelHead head)
    {
        for (int row = 0; row < batch.Rows; row++)
            head.HostHiddenRows[row] = SharedRows.Host.FullToShared[row * batch.SequenceLength + batch.RowPromptLength(row) + batch.Lengths[row] - 1];
        head.SetTargets(batch.Rows);
    }
}
