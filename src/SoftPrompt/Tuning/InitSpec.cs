namespace SoftPrompt.Tuning;

public enum InitKind { RandomUniform, SampledVocab, ClassLabels, Text, File }

/// <summary>
/// How a prompt starts (Lester et al. 2021, §3.2): <c>random-uniform</c> (alias <c>random</c>), <c>sampled-vocab</c>,
/// <c>class-labels</c>, <c>text:"…"</c>, or a prompt file (<c>FILE.safetensors</c>). <see cref="Argument"/> holds the
/// text or the path.
/// </summary>
public sealed record InitSpec(InitKind Kind, string Argument = "")
{
    public const string TextPrefix = "text:";

    public static readonly InitSpec RandomUniform = new(InitKind.RandomUniform);
    public static readonly InitSpec SampledVocab = new(InitKind.SampledVocab);
    public static readonly InitSpec ClassLabels = new(InitKind.ClassLabels);

    public static InitSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec)
        {
            case "random" or "random-uniform": return RandomUniform;
            case "sampled-vocab": return SampledVocab;
            case "class-labels": return ClassLabels;
        }
        if (spec.StartsWith(TextPrefix, StringComparison.Ordinal))
        {
            string text = spec[TextPrefix.Length..];
            // Shells keep the quotes of text:"…" when they are not at the start of the word.
            if (text.Length >= 2 && text[0] == '"' && text[^1] == '"') text = text[1..^1];
            if (text.Length == 0) throw new ArgumentException("`InitSpec` text: needs the text to embed, e.g. text:Classify the sentiment of this review.");
            return new InitSpec(InitKind.Text, text);
        }
        if (spec.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || File.Exists(spec)) return new InitSpec(InitKind.File, spec);
        throw new ArgumentException($"`InitSpec` \"{spec}\" is not an initialisation: use random-uniform, sampled-vocab, class-labels, text:\"…\" or a prompt FILE.safetensors.");
    }

    /// <summary>The spec as written on a command line, for metadata and logs.</summary>
    public override string ToString() => Kind switch
    {
        InitKind.RandomUniform => "random-uniform",
        InitKind.SampledVocab => "sampled-vocab",
        InitKind.ClassLabels => "class-labels",
        InitKind.Text => TextPrefix + Argument,
        _ => Argument,
    };

    /// <summary>PEFT's PromptTuningInit for this kind; PEFT has no class-label or file init, so those read as RANDOM.</summary>
    public string PeftName => Kind switch
    {
        InitKind.Text => "TEXT",
        InitKind.SampledVocab => "SAMPLE_VOCAB",
        _ => "RANDOM",
    };
}
