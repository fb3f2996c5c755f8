using SoftPrompt.Engines;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// Stop strings (<see cref="StopStrings"/>): a row ends once its generated text contains one, whatever its input holds,
/// on the cached sessions (continuous batching: a stopped row's slot goes to the next input) and uncached decoding alike.
/// The expected answers come from a run without stop strings: its shortest prefix whose text contains a stop string.
/// </summary>
public sealed class StopStringTests
{
    /// <summary>One letter per id; Decode joins them with spaces, so "c f" spans two tokens.</summary>
    private static readonly SymbolTokenizer Letters =
        new(Enumerable.Range(0, 23).ToDictionary(i => ((char)('a' + i)).ToString(), i => i), SpecialTokenNames.None, "vocab.json");

    private static IPromptEngine Open(string engine)
    {
        var layout = T5DecodingChecks.Layout;
        IPromptEngine opened = engine switch
        {
            "gpt2" => new CpuGpt2Engine<float>(TestModels.Random<float>(TestModels.TinyConfig(vocab: 23, positions: 32), seed: 4)),
            "t5" => new CpuT5Engine<float>(T5Weights<float>.CreateRandom(T5DecodingChecks.Config(gated: true), 5)),
            _ => new CudaT5Engine(TestDevices.OpenEmulated(), T5Weights<float>.CreateRandom(T5DecodingChecks.Config(gated: true), 5), ownsDevice: true),
        };
        opened.LoadPrompts(TestModels.RandomPrompts<float>(layout.ValueCount(opened.EmbeddingSize), seed: 9), layout);
        return opened;
    }

    private static readonly List<int[]> Inputs = [.. Enumerable.Range(0, 9).Select(i => Enumerable.Range(0, 2 + i % 5).Select(j => (7 * i + 5 * j + 3) % 23).ToArray())];
    private static readonly int[] Prompts = [.. Enumerable.Range(0, 9).Select(i => i % 3 == 1 ? 0 : 1)];

    private static int[][] Generate(IPromptEngine engine, bool useCache, StopStrings? stops = null) =>
        GreedyDecoder.Generate(engine, Inputs, Prompts, maxNewTokens: 9, stopToken: null, batchSize: 4, useCache, stopStrings: stops);

    private static int[] Expected(int[] free, StopStrings stops)
    {
        for (int k = 1; k <= free.Length; k++)
            if (stops.Values.Any(Letters.Decode(free.AsSpan(0, k)).Contains)) return free[..k];
        return free;
    }

    [TestCase("gpt2")]
    [TestCase("t5")]
    [TestCase("t5-emulated")]
    public void AStopStringSpanningTwoTokensEndsTheRowThere(string kind)
    {
        using var engine = Open(kind);
        var free = Generate(engine, useCache: true);
        // Two-token stop strings from two rows' answers: those rows end early, others may run on to the limit.
        var stops = new StopStrings([Letters.Decode(free[0].AsSpan(1, 2)), Letters.Decode(free[5].AsSpan(3, 2))], Letters);
        Assert.That(stops.Values, Has.All.Contains(" "), "each stop string spans two tokens");
        foreach (bool useCache in new[] { true, false })
        {
            var stopped = Generate(engine, useCache, stops);
            for (int i = 0; i < Inputs.Count; i++)
                Assert.That(stopped[i], Is.EqualTo(Expected(free[i], stops)), $"row {i}, cache {useCache}");
            Assert.That(stopped[0], Has.Length.AtMost(3), "row 0 stops at its stop string, well before the limit of 9");
        }
        string text = Letters.Decode(free[0]);
        Assert.That(stops.Cut(text), Is.EqualTo(text[..text.IndexOf(stops.Values[0], StringComparison.Ordinal)]), "the stop string and what follows are cut");
        Assert.That(stops.Cut("nothing here"), Is.EqualTo("nothing here"));
    }

    [TestCase("gpt2")]
    [TestCase("t5")]
    public void AStopStringInTheInputDoesNotStopTheRow(string kind)
    {
        using var engine = Open(kind);
        var free = Generate(engine, useCache: true);
        string answer = Letters.Decode(free[4]);
        // A two-token string of row 4's input that its answer never contains.
        string? inInput = Enumerable.Range(0, Inputs[4].Length - 1).Select(j => Letters.Decode(Inputs[4].AsSpan(j, 2))).FirstOrDefault(s => !answer.Contains(s));
        Assume.That(inInput, Is.Not.Null, "the input holds a pair the answer does not");
        var stopped = Generate(engine, useCache: true, new StopStrings([inInput!], Letters));
        Assert.That(stopped[4], Is.EqualTo(free[4]), $"\"{inInput}\" is in the input, not in the answer");
    }

    [Test]
    public void EmptyOrMissingStopStringsAreRefused()
    {
        Assert.That(() => new StopStrings([], Letters).Validate(), Throws.ArgumentException.With.Message.Contains("`StopStrings.Values` is empty"));
        Assert.That(() => new StopStrings(["x", ""], Letters).Validate(), Throws.ArgumentException.With.Message.Contains("`StopStrings.Values` holds an empty"));
        Assert.That(() => new StopStrings(["x"], null!).Validate(), Throws.ArgumentNullException);
        using var engine = Open("gpt2");
        Assert.That(() => Generate(engine, useCache: true, new StopStrings([""], Letters)), Throws.ArgumentException.With.Message.Contains("`StopStrings.Values`"));
    }
}
