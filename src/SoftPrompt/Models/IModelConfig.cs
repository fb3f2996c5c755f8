namespace SoftPrompt.Models;

/// <summary>
/// What the host (trainer, CLI, prompt files) needs to know about a frozen model, whatever its family; each
/// family's config record implements it next to its own, fuller fields.
/// </summary>
public interface IModelConfig
{
    /// <summary>The family the config belongs to; its <see cref="ModelFamily.Name"/> is written into prompt files.</summary>
    ModelFamily Family { get; }
    /// <summary>Width of the token embeddings, and so of every prompt vector.</summary>
    int Embedding { get; }
    /// <summary>Transformer blocks (for an encoder-decoder model, the encoder's).</summary>
    int Layers { get; }
    /// <summary>Attention heads per layer (PEFT adapter configs record it).</summary>
    int Heads { get; }
    int VocabSize { get; }
    /// <summary>Longest sequence the engine accepts (prompt included).</summary>
    int MaxPositions { get; }
    /// <summary>Frozen parameters of the model (a tied LM head counted once).</summary>
    long ParameterCount { get; }

    /// <summary>
    /// FLOPs of one forward + input-gradient-only backward over <paramref name="rows"/> rows of
    /// <paramref name="positions"/> positions (prompt + tokens) holding <paramref name="targets"/> target tokens in all.
    /// </summary>
    double TrainingStepFlops(int rows, int positions, long targets);
}
