using SoftPrompt.Engines;
using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>The plain training loop: sample a batch, forward + prompt-only backward, optimizer step on the engine.</summary>
public static class PromptTrainer
{
    public static TrainResult Train(IPromptEngine engine, IReadOnlyList<TokenizedExample> examples, TrainOptions options, Action<TrainProgress>? onStep = null)
        => new TrainingRun(engine, examples, options).Run(onStep is null ? null : new StepCallback(onStep));

    private sealed class StepCallback(Action<TrainProgress> onStep) : ITrainingObserver
    {
        public void OnStep(in TrainProgress progress) => onStep(progress);
    }
}
