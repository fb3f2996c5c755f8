using System.Numerics;
using SoftPrompt.Cuda;

namespace SoftPrompt.Checkpoints;

/// <summary>
/// A model's checkpoint directory with its family's rules for tensors: the name a tensor has in this checkpoint (the family
/// asks for names without the checkpoint's prefix, e.g. "h.0.ln_1.weight") and the check of its shape and dtype against
/// config.json, whose errors name the file and the tensor. A tensor is read whole to the host for the CPU engines
/// (<see cref="Read{T}"/>), or streamed from the mapping into a device tensor (<see cref="Stream"/>).
/// </summary>
internal sealed class CheckedCheckpoint(CheckpointDirectory directory, Func<string, string> checkpointName, CheckedCheckpoint.Check check) : IDisposable
{
    /// <summary>Returns the tensor's info after checking it has <paramref name="shape"/> and a convertible float dtype; <paramref name="name"/> is the checkpoint's own name.</summary>
    public delegate TensorInfo Check(CheckpointDirectory checkpoint, string name, ReadOnlySpan<long> shape);

    /// <summary>Reused by every <see cref="Stream"/>ed tensor: the host memory a device load needs besides the mapping.</summary>
    private readonly StagingBuffers staging = new();

    public CheckpointDirectory Directory => directory;

    public T[] Read<T>(string name, params ReadOnlySpan<long> shape) where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        string stored = checkpointName(name);
        var values = GC.AllocateUninitializedArray<T>(checked((int)check(directory, stored, shape).ElementCount));
        directory.Read<T>(stored, values);
        return values;
    }

    /// <summary>The tensor, checked now and read when a device tensor is written from it.</summary>
    public TensorValues Stream(string name, params ReadOnlySpan<long> shape)
    {
        string stored = checkpointName(name);
        var info = check(directory, stored, shape);
        return new StreamedTensor(directory.FileOf(stored), info, staging);
    }

    public void Dispose() => directory.Dispose();
}

/// <summary>Host buffers that streamed tensors convert through, allocated at the size first needed and reused: at most <see cref="SliceElements"/> floats and as many bf16 values (48 MiB).</summary>
internal sealed class StagingBuffers
{
    public const int SliceElements = 1 << 23;

    private float[] floats = [];
    private ushort[] bf16 = [];

    public Span<float> Floats(int count) => (floats.Length >= count ? floats : floats = new float[Math.Max(count, Math.Min(2 * floats.Length, SliceElements))]).AsSpan(0, count);

    public Span<ushort> Bf16(int count) => (bf16.Length >= count ? bf16 : bf16 = new ushort[Math.Max(count, Math.Min(2 * bf16.Length, SliceElements))]).AsSpan(0, count);
}

/// <summary>
/// A checkpoint tensor written into a device tensor slice by slice straight from the file's mapping: stored as the device
/// wants it (F32 into fp32, BF16 into bf16) it is copied as it is; otherwise each slice is converted through
/// <see cref="StagingBuffers"/> exactly as <see cref="TensorFile.ReadAsFloat"/> converts (F16/BF16/F64 → fp32, then
/// rounded to bf16 for a bf16 matrix), so the device holds what uploading the host weights would put there.
/// </summary>
internal sealed unsafe class StreamedTensor(TensorFile file, TensorInfo info, StagingBuffers staging) : TensorValues
{
    public override long Count => info.ElementCount;

    public override void CopyTo(IComputeDevice device, DeviceSpan<float> destination) =>
        ForEachSlice((stored, start, length) =>
        {
            var target = destination.Slice(start, length);
            if (info.DType == SafeTensorDType.F32) device.CopyToDevice(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(stored), target);
            else device.CopyToDevice<float>(ToSingle(stored, length), target);
        });

    public override void CopyToBf16(IComputeDevice device, DeviceSpan<ushort> destination) =>
        ForEachSlice((stored, start, length) =>
        {
            var target = destination.Slice(start, length);
            if (info.DType == SafeTensorDType.BF16) device.CopyToDevice(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(stored), target);
            else
            {
                var rounded = staging.Bf16(length);
                ElementConversion.SingleToBFloat16(ToSingle(stored, length), rounded);
                device.CopyToDevice<ushort>(rounded, target);
            }
        });

    private delegate void SliceAction(ReadOnlySpan<byte> stored, long start, int length);

    private void ForEachSlice(SliceAction write)
    {
        byte* data = file.GetPointer(info.Name);
        int size = info.DType.ElementSize;
        for (long start = 0; start < Count; start += StagingBuffers.SliceElements)
        {
            int length = (int)Math.Min(StagingBuffers.SliceElements, Count - start);
            write(new ReadOnlySpan<byte>(data + start * size, length * size), start, length);
        }
    }

    private Span<float> ToSingle(ReadOnlySpan<byte> stored, int length)
    {
        var values = staging.Floats(length);
        ElementConversion.ToSingle(info.DType, stored, values);
        return values;
    }
}
