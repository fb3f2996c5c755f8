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
    private DeviceMemoryPlan(params DeviceArena[] arenas) => Arenas = arenas;

    /// <summary>Weights, the batch plan, the prompt state.</summary>
    public IReadOnlyList<DeviceArena> Arenas { get; }
    public long TotalBytes => Arenas.Sum(a => a.Bytes);
    public long BytesOf(DeviceMemoryKind kind) => Arenas.Sum(a => a.BytesOf(kind));

    /// <summary>The arenas the CUDA engine for <paramref name="config"/> allocates to run <paramref name="batch"/> with prompts laid out as <paramref name="layout"/>.</summary>
    public static DeviceMemoryPlan Measure(IModelConfig config, TokenBatch batch, PromptLayout layout, Precision precision = Precision.Fp32) =>
        config.Family.MeasureDeviceMemory(config, batch, layout, precision);

    internal static DeviceMemoryPlan Measure(Gpt2Config config, TokenBatch batch, PromptLayout layout, Precision precision)
    {
        BatchChecks.DecoderOnly(batch, layout, config.VocabSize, config.MaxPositions, requireTargets: false);
        var (rows, positions) = Gpt2DevicePlan.Capacity(batch, null);
        bool bf16 = precision == Precision.Bf16;
        return new(Gpt2DeviceWeights.Measure(config, bf16).Arena, Gpt2DevicePlan.Measure(config, rows, positions, layout, bf16).Arena, Prompts(config, layout));
    }

    internal static DeviceMemoryPlan Measure(LlamaConfig config, TokenBatch batch, PromptLayout layout, Precision precision)
    {
        BatchChecks.DecoderOnly(batch, layout, config.VocabSize, config.SequenceLimit, requireTargets: false);
        var (rows, positions, sequence) = LlamaDevicePlan.Capacity(config, batch, null);
        bool bf16 = precision == Precision.Bf16;
        return new(LlamaDeviceWeights.Measure(config, bf16).Arena, LlamaDevicePlan.Measure(config, rows, positions, sequence, layout, bf16).Arena, Prompts(config, layout));
    }

    internal static DeviceMemoryPlan Measure(T5Config config, TokenBatch batch, PromptLayout layout, Precision precision)
    {
        bool bf16 = precision == Precision.Bf16;
        var (encoder, decoder) = BatchChecks.EncoderDecoder(batch, layout, config.VocabSize, config.MaxPositions);
        var (rows, encoderLength, decoderLength) = T5DevicePlan.Capacity(batch.Rows, encoder, decoder, null);
        return new(T5DeviceWeights.Measure(config, bf16).Arena, T5DevicePlan.Measure(config, rows, encoderLength, decoderLength, bf16).Arena, Prompts(config, layout));
    }

    private static DeviceArena Prompts(IModelConfig config, PromptLayout layout) => DevicePromptState.Buffers.Measure(config.Embedding, layout).Arena;
}
