using BenchmarkDotNet.Attributes;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;

namespace SoftPrompt.Benchmarks;

/// <summary>
/// One CPU prompt-tuning step (forward, prompt-only backward, AdamW) on a GPT-2-shaped model small enough
/// for two cores: d=256, 4 layers, 8 heads, vocab 8192; batch 4 × (P=20 + 108 tokens) = 512 positions.
/// Tokens/s = 512 / mean time.
/// </summary>
[MemoryDiagnoser]
public class CpuTrainingStepBenchmark
{
    private CpuGpt2Engine<float> engine = null!;
    private TokenBatch batch = null!;
    private readonly OptimizerSettings adamw = new(OptimizerKind.AdamW);
    private int step;

    [GlobalSetup]
    public void Setup()
    {
        var config = new Gpt2Config(VocabSize: 8192, MaxPositions: 256, Embedding: 256, Layers: 4, Heads: 8, Inner: 1024, LayerNormEpsilon: 1e-5, Activation: "gelu_new");
        engine = new CpuGpt2Engine<float>(Gpt2Weights<float>.CreateRandom(config, seed: 1));
        const int promptLength = 20, tokens = 108;
        var random = new Random(2);
        var prompt = new float[promptLength * config.Embedding];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (float)(random.NextDouble() - 0.5);
        engine.LoadPrompts(prompt, 1, promptLength);
        batch = new TokenBatch(4, tokens, promptLength);
        batch.Reset(tokens);
        for (int row = 0; row < 4; row++)
        {
            var ids = Enumerable.Range(0, tokens).Select(_ => random.Next(config.VocabSize)).ToArray();
            batch.AddRow(ids[..96], ids[96..]);
        }
        engine.ForwardBackward(batch);
    }

    [Benchmark]
    public float TrainingStep()
    {
        float loss = engine.ForwardBackward(batch);
        engine.OptimizerStep(adamw, ++step, 1e-3f);
        return loss;
    }

    [Benchmark]
    public float ForwardOnly() => engine.Forward(batch);
}
