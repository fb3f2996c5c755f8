using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Cuda;

/// <summary>
/// A CUDA driver, cuBLAS or kernel-module call that failed, or a GPU that cannot be used. The message names the
/// call with its key arguments, the error's name and description, and what to do about it.
/// </summary>
public sealed class CudaException : Exception
{
    public CudaException(string message) : base(message) { }
    public CudaException(string message, Exception inner) : base(message, inner) { }

    internal CudaException(string call, CuResult result, string message) : base(message)
    {
        Call = call;
        DriverResult = (int)result;
    }

    internal CudaException(string call, CublasStatus status, string message) : base(message)
    {
        Call = call;
        CublasStatus = (int)status;
    }

    /// <summary>The failing call as written in the message, e.g. "cuMemAlloc_v2(1073741824 bytes)"; null when no single call failed.</summary>
    public string? Call { get; }
    /// <summary>The CUresult code when a driver call failed.</summary>
    public int? DriverResult { get; }
    /// <summary>The cublasStatus_t code when a cuBLAS call failed.</summary>
    public int? CublasStatus { get; }
}
