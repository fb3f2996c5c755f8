using SoftPrompt.Cuda;
using SoftPrompt.Models;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;

namespace SoftPrompt.Engines;

/// <summary>
/// Everything a CUDA engine allocates for a model and a batch — weights, the plan the batch grows, the prompt state — laid
/// out by the engine's own declarations but without a device (<see cref="DeviceArena.Measure{TPlan}"/>): "does it fit" before
/// anyone has a GPU, and a check of every plan at real shapes.
/// </summary>
public sealed class DeviceMemoryPlan
{
    private DeviceMemoryPlan(bool recomputes, params DeviceArena[] arenas)
    {
        Recomputes = recomputes;
        Arenas = arenas;
    }

    /// <summary>Whether the batch plan keeps only layer inputs and recomputes each layer in the reverse pass (<see cref="Recomputation"/>).</summary>
    public bool Recomputes { get; }

    /// <summary>Weights, the batch plan, the prompt state.</summary>
    public IReadOnlyList<DeviceArena> Arenas { get; }
    public long TotalBytes => Arenas.Sum(a => a.Bytes);
    public long BytesOf(DeviceMemoryKind kind) => Arenas.Sum(a => a.BytesOf(kind));

    /// <summary>
    /// The arenas the CUDA engine for <paramref name="config"/> allocates to run <paramref name="batch"/> with prompts laid out as
    /// <paramref name="layout"/>, on a device with <paramref name="deviceBytes"/> free before the engine loads (what
    /// <see cref="Recomputation.Auto"/> decides by; unlimited by default).
    /// </summary>
    public static DeviceMemoryPlan Measure(IModelConfig config, TokenBatch batch, PromptLayout layout, Precision precision = Precision.Fp32,
        Recomputation recomputation = Recomputation.Auto, long deviceBytes = long.MaxValue) =>
        config.Family.MeasureDeviceMemory(config, batch, layout, new PlanRequest(precision, recomputation, deviceBytes));

    /// <summary>How to measure: the engine's precision and recomputation, and the device memory Auto plans for.</summary>
    public readonly record struct PlanRequest(Precision Precision, Recomputation Recomputation, long DeviceBytes)
    {
        public bool Bf16 => Precision == Precision.Bf16;
    }

    internal static DeviceMemoryPlan Measure(Gpt2Config config, TokenBatch batch, PromptLayout layout, PlanRequest request)
    {
        BatchChecks.DecoderOnly(batch, layout, config.VocabSize, config.MaxPositions, requireTargets: false);
        var (rows, positions) = Gpt2DevicePlan.Capacity(batch, null);
        return Build(Gpt2DeviceWeights.Measure(config, request.Bf16).Arena, Prompts(config, layout), request,
            recomputes => Gpt2DevicePlan.Measure(config, rows, positions, layout, request.Bf16, recomputes).Arena);
    }

    internal static DeviceMemoryPlan Measure(LlamaConfig config, TokenBatch batch, PromptLayout layout, PlanRequest request)
    {
        BatchChecks.DecoderOnly(batch, layout, config.VocabSize, config.SequenceLimit, requireTargets: false);
        var (rows, positions, sequence) = LlamaDevicePlan.Capacity(config, batch, null);
        return Build(LlamaDeviceWeights.Measure(config, request.Bf16).Arena, Prompts(config, layout), request,
            recomputes => LlamaDevicePlan.Measure(config, rows, positions, sequence, layout, request.Bf16, recomputes).Arena);
    }

    internal static DeviceMemoryPlan Measure(T5Config config, TokenBatch batch, PromptLayout layout, PlanRequest request)
    {
        var (encoder, decoder) = BatchChecks.EncoderDecoder(batch, layout, config.VocabSize, config.MaxPositions);
        var (rows, encoderLength, decoderLength) = T5DevicePlan.Capacity(batch.Rows, encoder, decoder, null);
        return Build(T5DeviceWeights.Measure(config, request.Bf16).Arena, Prompts(config, layout), request,
            recomputes => T5DevicePlan.Measure(config, rows, encoderLength, decoderLength, request.Bf16, recomputes).Arena);
    }

    /// <summary>The engine's order: weights, then the prompts, then the batch plan in what memory is left (as <see cref="DeviceEngine"/> decides).</summary>
    private static DeviceMemoryPlan Build(DeviceArena weights, DeviceArena prompts, PlanRequest request, Func<bool, DeviceArena> batchPlan)
    {
        var full = batchPlan(false);
        long left = request.DeviceBytes == long.MaxValue ? long.MaxValue : request.DeviceBytes - weights.Bytes - prompts.Bytes;
        bool recomputes = RecomputationPolicy.Recomputes(request.Recomputation, full.Bytes, left);
        return new(recomputes, weights, recomputes ? batchPlan(true) : full, prompts);
    }

    private static DeviceArena Prompts(IModelConfig config, PromptLayout layout) => DevicePromptState.Buffers.Measure(config.Embedding, layout).Arena;
}
