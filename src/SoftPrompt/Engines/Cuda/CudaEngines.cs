using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>Opens the CUDA engine on a real GPU or on the kernel emulator.</summary>
internal static class CudaEngines
{
    private static readonly Lazy<bool> Gpu = new(() => CudaDevice.IsAvailable(out _) && EmbeddedPtx.IsAvailable);

    public static bool GpuAvailable => Gpu.Value;

    public static IPromptEngine Create(Gpt2Weights<float> weights, string device, EngineOptions options)
        => Create(weights.Config, new HostWeightSource<Gpt2Weights<float>>(weights), device, options);

    public static IPromptEngine Create(T5Weights<float> weights, string device, EngineOptions options)
        => Create(weights.Config, new HostWeightSource<T5Weights<float>>(weights), device, options);

    public static IPromptEngine Create(LlamaWeights<float> weights, string device, EngineOptions options)
        => Create(weights.Config, new HostWeightSource<LlamaWeights<float>>(weights), device, options);

    public static IPromptEngine Create(Gpt2Config config, WeightSource<Gpt2Weights<float>> weights, string device, EngineOptions options)
        => Create(device, options, compute => new CudaGpt2Engine(compute, config, weights, ownsDevice: true, bf16: options.Precision == Precision.Bf16));

    public static IPromptEngine Create(T5Config config, WeightSource<T5Weights<float>> weights, string device, EngineOptions options)
        => Create(device, options, compute => new CudaT5Engine(compute, config, weights, ownsDevice: true, bf16: options.Precision == Precision.Bf16));

    public static IPromptEngine Create(LlamaConfig config, WeightSource<LlamaWeights<float>> weights, string device, EngineOptions options)
        => Create(device, options, compute => new CudaLlamaEngine(compute, config, weights, ownsDevice: true, bf16: options.Precision == Precision.Bf16));

    /// <summary>Throws unless <paramref name="device"/> can be opened ("cuda" needs a usable GPU and the built kernels): callers check before an expensive load.</summary>
    public static void Check(string device)
    {
        if (device != "cuda") return;
        if (!CudaDevice.IsAvailable(out string? reason)) throw new InvalidOperationException($"`device` cuda: {reason}");
        if (!EmbeddedPtx.IsAvailable) throw new InvalidOperationException($"`device` cuda: {EmbeddedPtx.NotBuiltMessage}");
    }

    private static IPromptEngine Create(string device, EngineOptions options, Func<IComputeDevice, DeviceEngine> engine)
    {
        IComputeDevice compute = device switch
        {
            "cuda" => OpenGpu(),
            _ => new EmulatedDevice(),
        };
        if (compute is CudaDevice gpu) gpu.AllowTf32 = options.AllowTf32;
        try
        {
            var created = engine(compute);
            created.Recomputation = options.Recomputation;
            return created;
        }
        catch
        {
            compute.Dispose();
            throw;
        }
    }

    private static CudaDevice OpenGpu()
    {
        Check("cuda");
        return CudaDevice.Open(0, EmbeddedPtx.Load, EmbeddedPtx.LoadCubin);
    }
}
