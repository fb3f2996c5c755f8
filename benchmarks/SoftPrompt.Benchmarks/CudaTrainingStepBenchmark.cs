using BenchmarkDotNet.Attributes;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Benchmarks;

/// <summary>
/// One prompt-tuning step of the CUDA engine (forward, prompt-only backward, AdamW on the device): gpt2-small,
/// batch 16 × (prompt 100 + 256 tokens), language-modelling targets, on a GPU (fp32 and TF32 GEMMs); a tiny
/// model on the emulator.
/// </summary>
[MemoryDiagnoser]
public class CudaTrainingStepBenchmark
{
    private CudaGpt2Engine engine = null!;
    private TokenBatch batch = null!;
    private readonly OptimizerSettings adamw = new(OptimizerKind.AdamW);
    private int step;

    [Params(false, true)]
    public bool Tf32 { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var device = BenchDevices.Open();
        bool gpu = device is CudaDevice;
        if (device is CudaDevice cuda) cuda.AllowTf32 = Tf32;
        var config = gpu ? Gpt2Shapes.Named["gpt2-small"] : new Gpt2Config(97, 64, 64, 2, 4, 256, 1e-5, "gelu_new");
        (int rows, int tokens, int promptLength) = gpu ? (16, 256, 100) : (2, 24, 4);
        engine = new CudaGpt2Engine(device, Gpt2Weights<float>.CreateRandom(config, seed: 1), ownsDevice: true);
        var random = new Random(2);
        engine.LoadPrompts(Enumerable.Range(0, promptLength * config.Embedding).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(), 1, promptLength);
        batch = new TokenBatch(rows, tokens, promptLength);
        batch.Reset(tokens);
        for (int row = 0; row < rows; row++)
        {
            var ids = Enumerable.Range(0, tokens).Select(_ => random.Next(config.VocabSize)).ToArray();
            batch.AddRow(ids[..1], ids[1..]);
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
