namespace SoftPrompt.Cuda;

/// <summary>The device of a plan built by <see cref="DeviceArena.Measure{TPlan}"/>: its spans are placed but not backed, so every use is refused.</summary>
internal sealed class MeasuredPlanDevice : IComputeDevice
{
    public static readonly MeasuredPlanDevice Instance = new();

    private MeasuredPlanDevice() { }

    public string Kind => "measured";
    public string Description => "no device: a measured plan";

    private static InvalidOperationException Refused() => new("This plan was measured, not allocated: it has no device memory to run on.");

    public DeviceBuffer<T> Allocate<T>(long count) where T : unmanaged => throw Refused();
    public void Free(ulong address) => throw Refused();
    public void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceSpan<T> destination) where T : unmanaged => throw Refused();
    public void CopyToHost<T>(DeviceSpan<T> source, Span<T> destination) where T : unmanaged => throw Refused();
    public void CopyDeviceToDevice<T>(DeviceSpan<T> source, DeviceSpan<T> destination) where T : unmanaged => throw Refused();
    public void Zero<T>(DeviceSpan<T> destination) where T : unmanaged => throw Refused();
    public KernelFunction GetKernel(string name) => throw Refused();
    public unsafe void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, uint sharedMemoryBytes, void** arguments, int argumentCount) => throw Refused();
    public void Gemm(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, int batchCount = 1) => throw Refused();
    public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, int batchCount = 1) => throw Refused();
    public void GemmBf16(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, int batchCount = 1) => throw Refused();
    public void GemmEpilogue(int m, int n, int k, float alpha, GemmOperand a, GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue) => throw Refused();
    public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, GemmOperand c, GemmOperand d, GemmEpilogue<float> epilogue) => throw Refused();
    public void GemmEpilogue(int m, int n, int k, float alpha, Bf16GemmOperand a, Bf16GemmOperand b, float beta, Bf16GemmOperand c, Bf16GemmOperand d, GemmEpilogue<ushort> epilogue) => throw Refused();
    public void Synchronize() => throw Refused();
    public void Dispose() { }
}
