using System.Text.Json;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>
/// Our SentencePiece tokenizer against Google's sentencepiece on the fixtures tools/tokenizers/make_sentencepiece_fixtures.py
/// writes: a Unigram model trained with T5's settings (nmt_nfkc, no byte fallback) and a BPE model trained with Llama 2's
/// (byte fallback, whitespace-only pieces), plus a Unigram and a BPE model with user-defined pieces, with the ids
/// sentencepiece gives for unknown-character runs, control characters, equal-score ties, whitespace runs, indentation,
/// multilingual text, code, astral characters, digits, random strings and every vocabulary piece as text. Ids must
/// match id for id.
/// </summary>
public sealed class SentencePieceFixtureTests
{
    private static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "sentencepiece");

    private static readonly string[] Fixtures = ["t5-style", "llama2-style", "unigram-user-defined", "bpe-user-defined"];

    [TestCaseSource(nameof(Fixtures))]
    public void CasesGiveTheOracleIds(string name) => AssertOracleIds(name, "cases", entry => entry.GetProperty("text").GetString()!);

    [TestCaseSource(nameof(Fixtures))]
    public void EveryPieceAsTextGivesTheOracleIds(string name) =>
        AssertOracleIds(name, "pieces", entry => Load(name).TokenText(entry.GetProperty("id").GetInt32()).Replace('▁', ' '));

    [Test]
    public void LlamaStyleDecodesItsIdsBackToTheText()
    {
        // Identity normalization, spaces kept, byte fallback: nothing is lost, so decoding must give the text back
        // (except a literal ▁, which is the model's spelling of a space).
        var fixture = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, "llama2-style.json"))).RootElement;
        var tokenizer = Load("llama2-style");
        foreach (var entry in fixture.GetProperty("cases").EnumerateArray())
        {
            string text = entry.GetProperty("text").GetString()!;
            if (text.Contains('▁')) continue;
            Assert.That(tokenizer.Decode(tokenizer.Encode(text)), Is.EqualTo(text), VocabFiles.Quote(text));
        }
    }

    private static void AssertOracleIds(string name, string list, Func<JsonElement, string> textOf)
    {
        var fixture = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, name + ".json"))).RootElement;
        var tokenizer = Load(name);
        var mismatches = new List<string>();
        int count = 0;
        foreach (var entry in fixture.GetProperty(list).EnumerateArray())
        {
            string text = textOf(entry);
            int[] expected = [.. entry.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())];
            int[] ours = tokenizer.Encode(text);
            count++;
            if (!ours.SequenceEqual(expected)) mismatches.Add($"{VocabFiles.Quote(text)}: expected [{string.Join(", ", expected)}], ours [{string.Join(", ", ours)}]");
        }
        Assert.That(count, Is.GreaterThan(0));
        Assert.That(mismatches, Is.Empty, $"{mismatches.Count} of {count} strings differ from {fixture.GetProperty("oracle").GetString()}");
    }

    private static readonly Dictionary<string, ITextTokenizer> Loaded = [];

    private static ITextTokenizer Load(string name)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(name, out var tokenizer))
                Loaded[name] = tokenizer = SentencePieceTextTokenizer.Load(Path.Combine(Root, name + ".model"), SpecialTokenNames.None);
            return tokenizer;
        }
    }
}
