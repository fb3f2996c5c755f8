using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Engines;

/// <summary>Opens the CUDA engine on a real GPU or on the kernel emulator.</summary>
internal static class CudaEngines
{
    private static readonly Lazy<bool> Gpu = new(() => CudaDevice.IsAvailable(out _) && EmbeddedPtx.IsAvailable);

    public static bool GpuAvailable => Gpu.Value;

    public static IPromptEngine Create(Gpt2Weights<float> weights, string device, EngineOptions options)
    {
        IComputeDevice compute = device switch
        {
            "cuda" => OpenGpu(),
            _ => new EmulatedDevice(),
        };
        if (compute is CudaDevice gpu) gpu.AllowTf32 = options.AllowTf32;
        try
        {
            return new CudaGpt2Engine(compute, weights, ownsDevice: true);
        }
        catch
        {
            compute.Dispose();
            throw;
        }
    }

    private static CudaDevice OpenGpu()
    {
        if (!CudaDevice.IsAvailable(out string? reason)) throw new InvalidOperationException($"--device cuda: {reason}");
        if (!EmbeddedPtx.IsAvailable) throw new InvalidOperationException($"--device cuda: {EmbeddedPtx.NotBuiltMessage}");
        return CudaDevice.Open(0, EmbeddedPtx.Load, EmbeddedPtx.LoadCubin);
    }
}
