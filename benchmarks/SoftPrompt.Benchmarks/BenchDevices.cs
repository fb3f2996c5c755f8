using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Benchmarks;

/// <summary>
/// The device the CUDA benchmarks run on: GPU 0 when one is usable, else the kernel emulator (whose timings
/// describe the emulator, not a GPU — the benchmark then shrinks its shapes). SOFTPROMPT_BENCH_DEVICE=cuda|cuda-emulated forces one.
/// </summary>
internal static class BenchDevices
{
    public static IComputeDevice Open()
    {
        string? forced = Environment.GetEnvironmentVariable("SOFTPROMPT_BENCH_DEVICE");
        bool gpu = forced switch
        {
            "cuda" => true,
            "cuda-emulated" => false,
            _ => CudaDevice.IsAvailable(out _) && EmbeddedPtx.IsAvailable,
        };
        return gpu ? CudaDevice.Open(0, EmbeddedPtx.Load, EmbeddedPtx.LoadCubin) : new EmulatedDevice();
    }
}
