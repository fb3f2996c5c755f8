using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Cuda;
using SoftPrompt.Tests.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>The devices the kernel self-tests run on: every fixture is instantiated once per kind.</summary>
public enum DeviceKind
{
    /// <summary>The CPU kernel emulator (kernels/build/emu, plus the tests' kernels/build/tests/emu); skipped when it was not built.</summary>
    Emulated,
    /// <summary>GPU 0 through CudaDevice and the embedded PTX; skipped without a GPU or PTX.</summary>
    Gpu,
}

internal static class TestDevices
{
    public static IComputeDevice Open(DeviceKind kind) => kind switch
    {
        DeviceKind.Emulated => OpenEmulated(),
        DeviceKind.Gpu => OpenGpu(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static EmulatedDevice OpenEmulated()
    {
        if (!EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? EmulatorLibrary.NotBuiltMessage);
        var device = new EmulatedDevice();
        TestKernelModule.AddTo(device);
        return device;
    }

    /// <summary>
    /// A CudaDevice of its own (GPU 0) with the embedded kernel module and the tests' own. Skipped without a GPU or without PTX, unless
    /// SOFTPROMPT_REQUIRE_GPU=1 (see <see cref="GpuTestEnvironment"/>), which turns a missing GPU into a failure.
    /// </summary>
    public static IComputeDevice OpenGpu()
    {
        bool required = Environment.GetEnvironmentVariable(GpuTestEnvironment.RequireGpuVariable) == "1";
        if (!CudaDevice.IsAvailable(out string? reason))
        {
            if (required) Assert.Fail($"{GpuTestEnvironment.RequireGpuVariable}=1 but no GPU is usable: {reason}");
            GpuTestEnvironment.SkipWithoutGpu(reason ?? "no CUDA GPU");
        }
        if (!EmbeddedPtx.IsAvailable)
        {
            if (required) Assert.Fail($"{GpuTestEnvironment.RequireGpuVariable}=1 but {EmbeddedPtx.NotBuiltMessage}");
            Assert.Ignore(EmbeddedPtx.NotBuiltMessage);
        }
        var gpu = CudaDevice.Open(0, EmbeddedPtx.Load, EmbeddedPtx.LoadCubin);
        TestKernelModule.AddTo(gpu);
        return gpu;
    }

    public static DeviceBuffer<T> Upload<T>(this IComputeDevice device, T[] data) where T : unmanaged
    {
        var buffer = device.Allocate<T>(data.Length);
        buffer.CopyFrom(data);
        return buffer;
    }

    public static T[] Download<T>(this DeviceBuffer<T> buffer) where T : unmanaged
    {
        var data = new T[buffer.Length];
        buffer.CopyTo(data);
        return data;
    }
}
