using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Tests.Cuda;

public sealed class CudaErrorTests
{
    [Test]
    public void FormatNamesTheCallTheErrorAndTheFix()
    {
        Assert.That(CudaCheck.Format("cuMemAlloc_v2(1073741824 bytes)", "CUDA_ERROR_OUT_OF_MEMORY", "out of memory", "reduce --batch-size"),
            Is.EqualTo("cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory) — reduce --batch-size"));
        Assert.That(CudaCheck.Format("cuInit(0)", "CUDA_ERROR_NO_DEVICE", null, null), Is.EqualTo("cuInit(0) failed: CUDA_ERROR_NO_DEVICE"));
    }

    [Test]
    public void DriverFailureCarriesCodeNameAndHint()
    {
        var e = CudaCheck.Failure(CuResult.OutOfMemory, "cuMemAlloc_v2(1073741824 bytes)", "1024 MiB requested, 12 MiB free");
        // With a driver the description comes from cuGetErrorString; without one only the name is known.
        Assert.That(e.Message, Does.StartWith("cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY"));
        Assert.That(e.Message, Does.Contain("1024 MiB requested, 12 MiB free; reduce `TrainOptions.BatchSize`"));
        Assert.That(e.Call, Is.EqualTo("cuMemAlloc_v2(1073741824 bytes)"));
        Assert.That(e.DriverResult, Is.EqualTo(2));
        Assert.That(e.CublasStatus, Is.Null);
    }

    [Test]
    public void DetailGoesOnItsOwnLinesAfterTheFix()
    {
        var e = CudaCheck.Failure(CuResult.InvalidPtx, "cuModuleLoadDataEx(kernel module, 10 bytes of PTX)", detail: "JIT error log:\nline 3: error\n");
        string firstLine = e.Message.Split(Environment.NewLine)[0];
        Assert.That(firstLine, Does.StartWith("cuModuleLoadDataEx(kernel module, 10 bytes of PTX) failed: CUDA_ERROR_INVALID_PTX").And.Contain("./build.sh kernels"));
        Assert.That(e.Message, Does.EndWith(Environment.NewLine + "JIT error log:\nline 3: error"));
    }

    [TestCase(0, "CUDA_SUCCESS")]
    [TestCase(209, "CUDA_ERROR_NO_BINARY_FOR_GPU")]
    [TestCase(700, "CUDA_ERROR_ILLEGAL_ADDRESS")]
    [TestCase(34, "CUDA_ERROR_STUB_LIBRARY")]
    [TestCase(218, "CUDA_ERROR_INVALID_PTX")]
    [TestCase(12345, "CUDA_ERROR_12345")]
    public void FallbackNamesMatchCudaH(int code, string name) => Assert.That(CudaCheck.FallbackName((CuResult)code), Is.EqualTo(name));

    [Test]
    public void KernelFaultsPointToTheTools()
    {
        foreach (var code in new[] { CuResult.IllegalAddress, CuResult.LaunchFailed, CuResult.MisalignedAddress })
            Assert.That(CudaCheck.DriverHint(code), Does.Contain("CUDA_LAUNCH_BLOCKING=1").And.Contain("compute-sanitizer"));
    }

    [Test]
    public void CublasFailureNamesTheStatus()
    {
        var e = CudaCheck.Failure(CublasStatus.NotInitialized, "cublasCreate_v2 (from libcublas.so.13)");
        Assert.That(e.Message, Does.StartWith("cublasCreate_v2 (from libcublas.so.13) failed: CUBLAS_STATUS_NOT_INITIALIZED (the library was not initialized) — "));
        Assert.That(e.Message, Does.Contain(CudaLibraries.LibraryDirectoryVariable));
        Assert.That(e.CublasStatus, Is.EqualTo(1));
        Assert.That(CudaCheck.CublasStatusName(CublasStatus.ArchMismatch), Is.EqualTo("CUBLAS_STATUS_ARCH_MISMATCH"));
        Assert.That(CudaCheck.CublasStatusName((CublasStatus)99), Is.EqualTo("CUBLAS_STATUS_99"));
    }

    [Test]
    public void VersionsAreDecodedTheCudaWay()
    {
        Assert.That(CudaDevice.FormatVersion(13000), Is.EqualTo("13.0"));
        Assert.That(CudaDevice.FormatVersion(12080), Is.EqualTo("12.8"));
        Assert.That(CudaDevice.FormatCublasVersion(120804), Is.EqualTo("12.8.4"));
        Assert.That(CudaDevice.FormatCublasVersion(111103), Is.EqualTo("11.11.3"));
    }
}
