using System.Runtime.InteropServices;

namespace SoftPrompt.Cuda.Interop;

/// <summary>A retained primary context of one device; released (reference-counted by the driver) when disposed.</summary>
internal sealed class PrimaryContextHandle : SafeHandle
{
    public PrimaryContextHandle(nint context, int device) : base(0, ownsHandle: true)
    {
        SetHandle(context);
        Device = device;
    }

    public int Device { get; }
    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => CudaDriver.cuDevicePrimaryCtxRelease_v2(Device) == CuResult.Success;
}

/// <summary>
/// A driver object that lives in a context. It holds a reference on the context handle, so even when the
/// finalizer thread releases things in no particular order the context goes last. It makes the context current
/// before destroying the object because some destroy calls act on "the current context", and puts back whatever
/// was current so the thread's cached current context (see CudaDevice.MakeCurrent) stays true.
/// </summary>
internal abstract unsafe class ContextBoundHandle : SafeHandle
{
    private readonly PrimaryContextHandle context;

    protected ContextBoundHandle(PrimaryContextHandle context, nint value) : base(0, ownsHandle: true)
    {
        bool added = false;
        context.DangerousAddRef(ref added);
        this.context = context;
        SetHandle(value);
    }

    public override bool IsInvalid => handle == 0;

    protected sealed override bool ReleaseHandle()
    {
        bool ok;
        try
        {
            nint own = context.DangerousGetHandle(), previous = 0;
            CudaDriver.cuCtxGetCurrent(&previous);
            if (previous != own) CudaDriver.cuCtxSetCurrent(own);
            ok = Destroy(handle);
            if (previous != own) CudaDriver.cuCtxSetCurrent(previous);
        }
        finally
        {
            context.DangerousRelease();
        }
        return ok;
    }

    protected abstract bool Destroy(nint value);
}

internal sealed class StreamHandle(PrimaryContextHandle context, nint value) : ContextBoundHandle(context, value)
{
    protected override bool Destroy(nint value) => CudaDriver.cuStreamDestroy_v2(value) == CuResult.Success;
}

internal sealed class CudaEventHandle(PrimaryContextHandle context, nint value) : ContextBoundHandle(context, value)
{
    protected override bool Destroy(nint value) => CudaDriver.cuEventDestroy_v2(value) == CuResult.Success;
}

internal sealed class CudaModuleHandle(PrimaryContextHandle context, nint value) : ContextBoundHandle(context, value)
{
    protected override bool Destroy(nint value) => CudaDriver.cuModuleUnload(value) == CuResult.Success;
}

internal sealed class CublasHandle(PrimaryContextHandle context, nint value) : ContextBoundHandle(context, value)
{
    protected override bool Destroy(nint value) => Cublas.cublasDestroy_v2(value) == CublasStatus.Success;
}

internal sealed unsafe class PinnedHostHandle(PrimaryContextHandle context, nint value) : ContextBoundHandle(context, value)
{
    protected override bool Destroy(nint value) => CudaDriver.cuMemFreeHost((void*)value) == CuResult.Success;
}

internal sealed class CublasLtHandle(PrimaryContextHandle context, nint value) : ContextBoundHandle(context, value)
{
    protected override bool Destroy(nint value) => CublasLt.cublasLtDestroy(value) == CublasStatus.Success;
}
