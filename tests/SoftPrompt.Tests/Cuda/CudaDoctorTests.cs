using SoftPrompt.Cuda;

namespace SoftPrompt.Tests.Cuda;

public sealed class CudaDoctorTests
{
    [Test]
    public void NeverThrowsAndAlwaysReportsDotNet()
    {
        var report = CudaDoctor.Run(loadPtx: () => null, deviceChecks: [_ => throw new InvalidOperationException("boom")]);
        Assert.That(report.Checks[0].Name, Is.EqualTo(".NET"));
        Assert.That(report.Checks[0].Detail, Does.Contain(".NET"));
        Assert.That(report.ToString(), Does.Contain("[info] .NET: "));
        if (report.CudaUsable)
        {
            // On a GPU machine the hook's exception is a failed check and missing kernels a warning, not a crash.
            Assert.That(report.Checks, Has.Some.Matches<DoctorCheck>(c => c.Name == "device check" && c.Status == DoctorStatus.Failed && c.Detail.Contains("boom")));
            Assert.That(report.Checks, Has.Some.Matches<DoctorCheck>(c => c.Name == "kernel module" && c.Detail == CudaDevice.KernelsNotBuiltMessage));
        }
    }

    [Test]
    public void ReportsAMissingDriverCleanly()
    {
        if (GpuTestEnvironment.DriverUsable) Assert.Ignore("a working NVIDIA driver is present on this machine");
        var report = CudaDoctor.Run();
        Assert.That(report.CudaUsable, Is.False);
        var driver = report.Checks.Single(c => c.Name == "NVIDIA driver");
        // No driver, or a driver that sees no GPU, is a machine without a GPU: reported as such, not as a failure (doctor's
        // exit code would otherwise fail every CPU machine); any other cuInit failure is a broken install.
        bool noGpu = !driver.Detail.Contains("CUDA_ERROR_") || driver.Detail.Contains("CUDA_ERROR_NO_DEVICE");
        Assert.That(driver.Status, Is.EqualTo(noGpu ? DoctorStatus.Info : DoctorStatus.Failed));
        // Either the library is missing, or (as on machines with the driver's user-space libraries but no GPU) cuInit fails.
        if (driver.Detail.StartsWith("no NVIDIA driver found", StringComparison.Ordinal))
            Assert.That(driver.Detail, Does.StartWith("no NVIDIA driver found: libcuda.so.1 could not be loaded (tried libcuda.so.1 (").And.Contain("--device cpu"));
        else
            Assert.That(driver.Detail, Does.StartWith("no usable NVIDIA GPU: the driver library loaded but cuInit(0) failed: CUDA_ERROR_")
                .And.Contain("nvidia-smi").And.Contain("`device` cpu").And.Contain("libcuda.so.1 loaded from "));
        TestContext.Out.WriteLine(report.ToString());
        // cuBLAS is still looked for, so the report says whether it would be found.
        Assert.That(report.Checks.Select(c => c.Name), Does.Contain("cuBLAS"));
        Assert.That(report.Checks, Has.None.Matches<DoctorCheck>(c => c.Name == "doctor"));
    }

    [Test]
    public void OpeningWithoutADriverIsACudaExceptionNotACrash()
    {
        if (GpuTestEnvironment.DriverUsable) Assert.Ignore("a working NVIDIA driver is present on this machine");
        Assert.That(CudaDevice.IsAvailable(out var reason), Is.False);
        Assert.That(reason, Does.StartWith("no NVIDIA driver found").Or.StartWith("no usable NVIDIA GPU"));
        var e = Assert.Throws<CudaException>(() => CudaDevice.Open(0));
        Assert.That(e!.Message, Is.EqualTo(reason));
        Assert.Throws<CudaException>(() => CudaDevice.QueryDevices());
    }
}
