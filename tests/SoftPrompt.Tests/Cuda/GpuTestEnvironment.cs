using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Interop;

namespace SoftPrompt.Tests.Cuda;

/// <summary>
/// The GPU for [Category("Gpu")] tests: one <see cref="CudaDevice"/> (GPU 0) shared by the whole run, opened on first
/// use. Where there is no driver or no GPU a test calling <see cref="RequireCuda"/> is skipped with the reason,
/// unless SOFTPROMPT_REQUIRE_GPU=1 (set it on GPU machines so a broken driver fails loudly instead).
/// The device is left for process exit to release: NUnit has no hook that runs after the last test of every fixture.
/// </summary>
public static class GpuTestEnvironment
{
    public const string RequireGpuVariable = "SOFTPROMPT_REQUIRE_GPU";

    private static readonly Lock Gate = new();
    private static CudaDevice? device;
    private static string? unavailable;
    private static string? openFailure;

    /// <summary>Whether libcuda.so.1 loads and cuInit succeeds (a driver library without a GPU or kernel module does not count).</summary>
    public static bool DriverUsable => CudaDriverProbe.TryInitialize(out _);

    /// <summary>The shared GPU, or the test is skipped (no GPU) or failed (a GPU that does not open).</summary>
    public static CudaDevice RequireCuda()
    {
        lock (Gate)
        {
            if (device is null && unavailable is null && openFailure is null)
            {
                if (!CudaDevice.IsAvailable(out var reason)) unavailable = reason ?? "no CUDA GPU";
                else
                {
                    try { device = CudaDevice.Open(0); }
                    catch (CudaException e) { openFailure = e.Message; }
                }
            }
        }
        if (device is not null) return device;
        if (openFailure is not null) Assert.Fail($"A CUDA driver and GPU are present but GPU 0 did not open: {openFailure}");
        if (Environment.GetEnvironmentVariable(RequireGpuVariable) == "1")
            Assert.Fail($"{RequireGpuVariable}=1 but no GPU is usable: {unavailable}");
        SkipWithoutGpu(unavailable!);
        throw new InvalidOperationException("unreachable: Assert.Ignore throws");
    }

    private static int explained;

    /// <summary>
    /// Skips the test for want of a GPU. The reason (a few hundred characters from the driver probe) is printed once per
    /// run; each skipped test then says only "no GPU", so a CPU machine's log is not hundreds of copies of it.
    /// </summary>
    public static void SkipWithoutGpu(string reason)
    {
        if (Interlocked.Exchange(ref explained, 1) == 0) TestContext.Progress.WriteLine($"GPU tests are skipped on this machine: {reason}");
        Assert.Ignore("no GPU");
    }
}
