using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

public sealed class PromptInitializerTests
{
    // A table whose row i is [i, i + 0.25, −i]: every prompt row says which token it came from.
    private static float[] Table(int vocab, int width = 3)
    {
        var table = new float[vocab * width];
        for (int i = 0; i < vocab; i++)
            for (int c = 0; c < width; c++) table[i * width + c] = c switch { 0 => i, 1 => i + 0.25f, _ => -i };
        return table;
    }

    private static int TokenOf(float[] values, int row, int width = 3) => (int)values[row * width];

    [Test]
    public void RandomUniformIsSeededAndWithinHalf()
    {
        var table = Table(10);
        var a = PromptInitializer.Create(InitSpec.Parse("random-uniform"), 50, table, 3, new InitSources { Seed = 4 });
        var b = PromptInitializer.Create(InitSpec.Parse("random"), 50, table, 3, new InitSources { Seed = 4 });
        var c = PromptInitializer.Create(InitSpec.RandomUniform, 50, table, 3, new InitSources { Seed = 5 });
        Assert.That(a, Is.EqualTo(b), "random is an alias of random-uniform");
        Assert.That(a, Is.Not.EqualTo(c));
        Assert.That(a, Has.All.InRange(-0.5f, 0.5f));
        Assert.That(a.Min(), Is.LessThan(-0.4f));
        Assert.That(a.Max(), Is.GreaterThan(0.4f));
    }

    [Test]
    public void MostFrequentOrdersByCountThenIdAndSkipsExcluded()
    {
        var data = new List<TokenizedExample> { new([5, 5, 2, 9], [5, 9]), new([2, 7], [9, 1]) };
        // counts: 5→3, 9→3, 2→2, 7→1, 1→1
        Assert.That(VocabularySampler.MostFrequent(data, 10, new HashSet<int>()), Is.EqualTo(new[] { 5, 9, 2, 1, 7 }));
        Assert.That(VocabularySampler.MostFrequent(data, 10, new HashSet<int> { 9 }, size: 3), Is.EqualTo(new[] { 5, 2, 1 }));
    }

    [Test]
    public void SampledVocabDrawsDistinctRowsFromTheTrainingDatasMostFrequentTokens()
    {
        var data = new List<TokenizedExample> { new([3, 4, 5, 6, 3], [7, 8, 20]) };
        var values = PromptInitializer.Create(InitSpec.SampledVocab, 6, Table(30), 3, new InitSources { TrainingData = data, Excluded = new HashSet<int> { 20 }, Seed = 1 });
        var tokens = Enumerable.Range(0, 6).Select(r => TokenOf(values, r)).ToList();
        Assert.That(tokens, Is.EquivalentTo(new[] { 3, 4, 5, 6, 7, 8 }), "six draws from a pool of six: each once; the excluded id never");
        for (int r = 0; r < 6; r++) Assert.That(values.AsSpan(r * 3, 3).ToArray(), Is.EqualTo(Table(30).AsSpan(tokens[r] * 3, 3).ToArray()));

        var more = PromptInitializer.Create(InitSpec.SampledVocab, 14, Table(30), 3, new InitSources { TrainingData = data, Excluded = new HashSet<int> { 20 }, Seed = 1 });
        var counts = Enumerable.Range(0, 14).GroupBy(r => TokenOf(more, r)).ToDictionary(g => g.Key, g => g.Count());
        Assert.That(counts.Values, Has.All.InRange(2, 3), "past the pool's size the draw starts over, so ids repeat evenly");
    }

    [Test]
    public void FrequencyOrderedVocabularySamplesIdsBelow5000()
    {
        var values = PromptInitializer.Create(InitSpec.SampledVocab, 200, Table(9000), 3,
            new InitSources { VocabIsFrequencyOrdered = true, Excluded = new HashSet<int> { 0, 1 }, Seed = 2 });
        var tokens = Enumerable.Range(0, 200).Select(r => TokenOf(values, r)).ToList();
        Assert.That(tokens, Has.All.InRange(2, 4999));
        Assert.That(tokens.Distinct().Count(), Is.EqualTo(200));
    }

    [Test]
    public void ClassLabelsAreTheMeanEmbeddingOfEachLabelThenSampledVocab()
    {
        using var model = DemoModel.Open();
        var tokenizer = DemoModel.Tokenizer();
        int width = model.Config.Embedding;
        var table = model.TokenEmbedding;
        var verbalizer = Verbalizer.Parse("neg=1 2,pos=3,mid=a b c");
        int[][] labels = [.. verbalizer.Texts.Select(tokenizer.Encode)];
        Assert.That(labels, Is.EqualTo(new[] { new[] { 1, 2 }, new[] { 3 }, new[] { 10, 11, 12 } }));
        var data = DemoModel.Rows("copy.train.jsonl", 50);

        var values = PromptInitializer.Create(InitSpec.ClassLabels, 6, table, width, new InitSources { LabelTokens = labels, TrainingData = data, Seed = 3 });

        for (int label = 0; label < labels.Length; label++)
            for (int c = 0; c < width; c++)
            {
                double sum = labels[label].Sum(id => (double)table[id * width + c]);
                Assert.That(values[label * width + c], Is.EqualTo((float)(sum / labels[label].Length)), $"label {label}, component {c}");
            }
        var pool = VocabularySampler.MostFrequent(data, model.Config.VocabSize, new HashSet<int>());
        var rest = new List<int>();
        for (int row = 3; row < 6; row++)
            rest.Add(pool.Single(id => table.AsSpan(id * width, width).SequenceEqual(values.AsSpan(row * width, width))));
        Assert.That(rest.Distinct().Count(), Is.EqualTo(3), "the positions after the labels are distinct sampled-vocab rows");
    }

    [Test]
    public void ClassLabelsNeedAVerbalizerAndRoomForEveryLabel()
    {
        var e = Assert.Throws<DataException>(() => PromptInitializer.Create(InitSpec.ClassLabels, 4, Table(10), 3, new InitSources()));
        Assert.That(e!.Message, Does.Contain("`InitSources.LabelTokens`"));
        var a = Assert.Throws<ArgumentException>(() => PromptInitializer.Create(InitSpec.ClassLabels, 1, Table(10), 3, new InitSources { LabelTokens = [[1], [2]] }));
        Assert.That(a!.Message, Does.Contain("a `promptLength` of 2 or more"));
    }

    [TestCase(7, new[] { 1, 2, 3, 1, 2, 3, 1 })]
    [TestCase(2, new[] { 1, 2 })]
    public void TextIsRepeatedOrCutToTheLength(int length, int[] expected)
    {
        using var model = DemoModel.Open();
        int width = model.Config.Embedding;
        var values = PromptInitializer.Create(InitSpec.Parse("text:\"1 2 3\""), length, model.TokenEmbedding, width, new InitSources { Tokenizer = DemoModel.Tokenizer() });
        for (int row = 0; row < length; row++)
            Assert.That(values.AsSpan(row * width, width).SequenceEqual(model.TokenEmbedding.AsSpan(expected[row] * width, width)), $"row {row}");
    }

    [Test]
    public void TextThatDoesNotTokenizeNamesTheInit()
    {
        using var model = DemoModel.Open();
        var e = Assert.Throws<DataException>(() => PromptInitializer.Create(InitSpec.Parse("text:1 zz"), 3, model.TokenEmbedding, model.Config.Embedding,
            new InitSources { Tokenizer = DemoModel.Tokenizer() }));
        Assert.That(e!.Message, Does.StartWith("`InitSpec` text:\"1 zz\"").And.Contain("zz"));
    }

    [Test]
    public void SpecsParse()
    {
        Assert.That(InitSpec.Parse("text:hello world"), Is.EqualTo(new InitSpec(InitKind.Text, "hello world")));
        Assert.That(InitSpec.Parse("p.safetensors"), Is.EqualTo(new InitSpec(InitKind.File, "p.safetensors")));
        Assert.That(InitSpec.Parse("class-labels").PeftName, Is.EqualTo("RANDOM"));
        Assert.That(InitSpec.Parse("text:x").PeftName, Is.EqualTo("TEXT"));
        Assert.That(InitSpec.Parse("sampled-vocab").PeftName, Is.EqualTo("SAMPLE_VOCAB"));
        Assert.Throws<ArgumentException>(() => InitSpec.Parse("gaussian"));
        Assert.Throws<ArgumentException>(() => InitSpec.Parse("text:"));
    }
}
