using SoftPrompt.Text;

namespace SoftPrompt.Tuning;

/// <summary>What initialisation may draw on besides the model's token embedding table.</summary>
public sealed record InitSources
{
    /// <summary>The training examples, whose token frequencies pick the sampled-vocab pool.</summary>
    public IReadOnlyList<TokenizedExample>? TrainingData { get; init; }
    /// <summary>Each label's token ids as the verbalizer spells it (target prefix applied, no EOS), in label order.</summary>
    public IReadOnlyList<int[]>? LabelTokens { get; init; }
    /// <summary>Encodes the text of <c>text:"…"</c> initialisation.</summary>
    public ITextTokenizer? Tokenizer { get; init; }
    /// <summary>The vocabulary's ids are ordered by frequency (SentencePiece, as T5's): the pool is ids 0..4999.</summary>
    public bool VocabIsFrequencyOrdered { get; init; }
    /// <summary>Ids never sampled (BOS/EOS/PAD): a prompt made of end-of-text vectors starts off telling the model to stop.</summary>
    public IReadOnlySet<int> Excluded { get; init; } = new HashSet<int>();
    public int Seed { get; init; }
    /// <summary>The model's fingerprint, which a prompt file used as init must carry (when it carries one).</summary>
    public string? ModelFingerprint { get; init; }
}

/// <summary>
/// Initial prompt values [P, d] (Lester et al. 2021, §3.2): random-uniform in [−0.5, 0.5); sampled-vocab (embeddings
/// of distinct tokens among the 5,000 most frequent); class-labels (each label's embedding — the mean over its tokens
/// when it has several — in the first positions, sampled-vocab after them); text (the embeddings of the text's tokens,
/// repeated or cut to P, as PEFT's TEXT init); or a prompt file.
/// </summary>
public static class PromptInitializer
{
    public const int DefaultLength = 20;

    /// <summary>The prompt length: a file init's own length (which <paramref name="requested"/> must match), else the request or the default.</summary>
    public static int ResolveLength(InitSpec spec, int? requested, int width, string? fingerprint)
    {
        if (requested is <= 0) throw new ArgumentException($"`promptLength` must be positive, got {requested}.");
        if (spec.Kind != InitKind.File) return requested ?? DefaultLength;
        var file = LoadFile(spec, width, fingerprint);
        if (requested is int length && length != file.Length)
            throw new ArgumentException($"{spec.Argument}: the init prompt has {file.Length} vectors but `promptLength` is {length}; leave `promptLength` unset or use a matching file.");
        return file.Length;
    }

    /// <param name="tokenEmbedding">The model's token embedding table [V, d] (float32).</param>
    public static float[] Create(InitSpec spec, int length, ReadOnlySpan<float> tokenEmbedding, int width, InitSources sources)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (tokenEmbedding.Length % width != 0) throw new ArgumentException($"The embedding table ({tokenEmbedding.Length} values) is not a whole number of rows of {width}.");
        int vocab = tokenEmbedding.Length / width;
        var values = new float[length * width];
        var random = new Random(sources.Seed);
        switch (spec.Kind)
        {
            case InitKind.RandomUniform:
                for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() - 0.5);
                break;
            case InitKind.SampledVocab:
                CopyRows(values, 0, VocabularySampler.Draw(Pool(sources, vocab), length, random), tokenEmbedding, width);
                break;
            case InitKind.ClassLabels:
                var labels = sources.LabelTokens ?? throw new DataException(
                    "`InitSpec` class-labels needs a verbalizer: give `InitSources.LabelTokens` (e.g. 0=negative,1=positive) with text data, or choose another `InitSpec`.");
                if (labels.Count > length)
                    throw new ArgumentException($"`InitSpec` class-labels: {labels.Count} labels do not fit a prompt of {length} vectors; use a `promptLength` of {labels.Count} or more.");
                for (int label = 0; label < labels.Count; label++) MeanOfRows(values.AsSpan(label * width, width), labels[label], tokenEmbedding, width, label);
                if (length > labels.Count)
                    CopyRows(values, labels.Count, VocabularySampler.Draw(Pool(sources, vocab), length - labels.Count, random), tokenEmbedding, width);
                break;
            case InitKind.Text:
                var tokenizer = sources.Tokenizer ?? throw new DataException("`InitSpec` text:… needs the model's tokenizer, but none was found beside the model; add the tokenizer files or choose another `InitSpec`.");
                int[] ids;
                try { ids = tokenizer.Encode(spec.Argument); }
                catch (DataException e) { throw new DataException($"`InitSpec` text:\"{spec.Argument}\": {e.Message}", e); }
                if (ids.Length == 0) throw new DataException($"`InitSpec` text:\"{spec.Argument}\" encodes to no tokens; give some text.");
                var repeated = new int[length];
                for (int i = 0; i < length; i++) repeated[i] = ids[i % ids.Length];
                CopyRows(values, 0, repeated, tokenEmbedding, width);
                break;
            case InitKind.File:
                var file = LoadFile(spec, width, sources.ModelFingerprint);
                if (file.Length != length)
                    throw new ArgumentException($"{spec.Argument}: the init prompt has {file.Length} vectors, the run asks for {length}.");
                return file.Values;
            default:
                throw new NotSupportedException($"Init kind {spec.Kind} is not supported.");
        }
        return values;
    }

    /// <summary>
    /// Initial prompts of an ensemble [K, P, d]: prompt k as <see cref="Create"/> makes it with seed Seed + k (k = 0 is
    /// the single-prompt run's prompt). An init that draws nothing at random (text, a file, class labels filling the
    /// whole prompt) would start every prompt alike, and identical prompts train identically: that is an error.
    /// </summary>
    public static float[] CreateEnsemble(InitSpec spec, int count, int length, ReadOnlySpan<float> tokenEmbedding, int width, InitSources sources)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (count == 1) return Create(spec, length, tokenEmbedding, width, sources);
        int size = length * width;
        var values = new float[count * size];
        for (int k = 0; k < count; k++)
        {
            var prompt = Create(spec, length, tokenEmbedding, width, sources with { Seed = sources.Seed + k });
            for (int j = 0; j < k; j++)
                if (values.AsSpan(j * size, size).SequenceEqual(prompt))
                    throw new ArgumentException($"`TrainOptions.Ensemble` {count} with `InitSpec` {spec}: prompts {j} and {k} start identical (this init draws nothing at random), " +
                        "so they would train identically; use random-uniform or sampled-vocab (or class-labels with a `promptLength` above the number of labels).");
            prompt.CopyTo(values.AsSpan(k * size, size));
        }
        return values;
    }

    private static PromptFile LoadFile(InitSpec spec, int width, string? fingerprint)
    {
        var file = PromptFile.Load(spec.Argument);
        file.CheckBelongsTo(spec.Argument, width, fingerprint);
        return file;
    }

    private static int[] Pool(InitSources sources, int vocab)
    {
        if (sources.VocabIsFrequencyOrdered) return VocabularySampler.FirstIds(vocab, new HashSet<int>(sources.Excluded));
        var data = sources.TrainingData ?? throw new ArgumentException(
            "sampled-vocab needs the training data to count token frequencies (or `InitSources.VocabIsFrequencyOrdered` for SentencePiece vocabularies ordered by frequency).");
        return VocabularySampler.MostFrequent(data, vocab, new HashSet<int>(sources.Excluded));
    }

    private static void CopyRows(Span<float> values, int firstRow, int[] ids, ReadOnlySpan<float> table, int width)
    {
        for (int i = 0; i < ids.Length; i++) table.Slice(ids[i] * width, width).CopyTo(values.Slice((firstRow + i) * width, width));
    }

    // Summed in double so the mean does not depend on the order of a long label's tokens beyond float rounding.
    private static void MeanOfRows(Span<float> destination, int[] ids, ReadOnlySpan<float> table, int width, int label)
    {
        if (ids.Length == 0) throw new DataException($"`InitSpec` class-labels: label {label} encodes to no tokens.");
        int vocab = table.Length / width;
        for (int c = 0; c < width; c++)
        {
            double sum = 0;
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)vocab) throw new DataException($"`InitSpec` class-labels: label {label} has token id {id}, outside the model's vocabulary [0, {vocab}).");
                sum += table[id * width + c];
            }
            destination[c] = (float)(sum / ids.Length);
        }
    }
}
