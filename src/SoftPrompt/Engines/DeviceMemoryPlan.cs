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
    public static DeviceMemoryPlan Measure(IModelConfig config, TokenBatch batch, PromptLayout layout)
    {
        var prompts = DevicePromptState.Buffers.Measure(config.Embedding, layout).Arena;
        switch (config)
        {
            case Gpt2Config gpt2:
            {
                BatchChecks.DecoderOnly(batch, layout, gpt2.VocabSize, gpt2.MaxPositions, requireTargets: false);
                var (rows, positions) = Gpt2DevicePlan.Capacity(batch, null);
                return new(Gpt2DeviceWeights.Measure(gpt2).Arena, Gpt2DevicePlan.Measure(gpt2, rows, positions, layout).Arena, prompts);
            }
            case LlamaConfig llama:
            {
                BatchChecks.DecoderOnly(batch, layout, llama.VocabSize, llama.SequenceLimit, requireTargets: false);
                var (rows, positions, sequence) = LlamaDevicePlan.Capacity(llama, batch, null);
                return new(LlamaDeviceWeights.Measure(llama).Arena, LlamaDevicePlan.Measure(llama, rows, positions, sequence, layout).Arena, prompts);
            }
            case T5Config t5:
            {
                var (encoder, decoder) = BatchChecks.EncoderDecoder(batch, layout, t5.VocabSize, t5.MaxPositions);
                var (rows, encoderLength, decoderLength) = T5DevicePlan.Capacity(batch.Rows, encoder, decoder, null);
                return new(T5DeviceWeights.Measure(t5).Arena, T5DevicePlan.Measure(t5, rows, encoderLength, decoderLength).Arena, prompts);
            }
            default:
                throw new NotSupportedException($"No device plan for {config.GetType().Name}.");
        }
    }
}
