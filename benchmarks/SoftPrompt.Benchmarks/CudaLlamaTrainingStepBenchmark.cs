using BenchmarkDotNet.Attributes;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models.Llama;

namespace SoftPrompt.Benchmarks;

/// <summary>
/// One prompt-tuning step of the CUDA Llama engine (forward, prompt-only backward, AdamW on the device): the
/// Llama-3.2-1B shape (grouped-query, tied head), batch 8 × (prompt 100 + 256 tokens), 4 targets per row, TF32 GEMMs,
/// on a GPU; a tiny model on the emulator.
/// </summary>
[MemoryDiagnoser]
public class CudaLlamaTrainingStepBenchmark
{
    private CudaLlamaEngine engine = null!;
    private TokenBatch batch = null!;
    private readonly OptimizerSettings adamw = new(OptimizerKind.AdamW);
    private int step;

    [GlobalSetup]
    public void Setup()
    {
        var device = BenchDevices.Open();
        bool gpu = device is CudaDevice;
        if (device is CudaDevice cuda) cuda.AllowTf32 = true;
        var config = gpu ? LlamaShapes.Named["llama3.2-1b"]
            : new LlamaConfig(97, 64, 2, 4, 2, 16, 172, 64, 1e-5, 10000, null, TiedEmbeddings: false);
        (int rows, int tokens, int promptLength) = gpu ? (8, 256, 100) : (2, 24, 4);
        engine = new CudaLlamaEngine(device, LlamaWeights<float>.CreateRandom(config, seed: 1), ownsDevice: true);
        var random = new Random(2);
        engine.LoadPrompts(Enumerable.Range(0, promptLength * config.Embedding).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(), 1, promptLength);
        batch = new TokenBatch(rows, tokens, promptLength);
        batch.Reset(tokens);
        for (int row = 0; row < rows; row++)
        {
            var ids = Enumerable.Range(0, tokens).Select(_ => random.Next(config.VocabSize)).ToArray();
            batch.AddRow(ids[..^4], ids[^4..]);
        }
        engine.ForwardBackward(batch);
    }

    [GlobalCleanup]
    public void Cleanup() => engine.Dispose();

    [Benchmark]
    public float TrainingStep()
    {
        float loss = engine.ForwardBackward(batch);
        engine.OptimizerStep(adamw, ++step, 1e-3f);
        return loss;
    }
}
