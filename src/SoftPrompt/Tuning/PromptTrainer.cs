using System.Diagnostics;
using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>The training loop: sample a batch, forward + prompt-only backward, optimizer step on the engine.</summary>
public static class PromptTrainer
{
    public static void Train(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, TrainOptions options, Action<TrainProgress>? onStep = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Steps);
        var sampler = new BatchSampler(examples, options.BatchSize, engine.PromptLength, options.Seed, options.Shuffle);
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= options.Steps; step++)
        {
            var batch = sampler.Next();
            float loss = engine.ForwardBackward(batch);
            if (!float.IsFinite(loss))
                throw new InvalidOperationException($"Loss became {loss} at step {step}; lower --lr or add --clip-norm.");
            engine.OptimizerStep(options.Optimizer, step, options.LearningRate);
            int tokens = batch.Rows * batch.SequenceLength;
            onStep?.Invoke(new TrainProgress(step, options.Steps, loss, engine, tokens, clock.Elapsed.TotalSeconds));
        }
    }
}
