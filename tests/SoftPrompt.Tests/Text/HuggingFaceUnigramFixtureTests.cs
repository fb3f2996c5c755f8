using System.Text.Json;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>
/// Our Unigram tokenizer.json support against Hugging Face's tokenizers (the Rust library, through its npm binding) on
/// the fixtures tools/tokenizers/make_unigram_json_fixtures.js writes: the SentencePiece fixture models converted as
/// transformers' converters write them (T5's current layout, the older WhitespaceSplit layout of T5 / flan-t5 on the
/// Hub, byte fallback with prepend_scheme first, split off with prepend_scheme never, added tokens matched in the
/// normalized text), each a directory holding only
/// tokenizer.json, with the ids of the SentencePiece corpus, of added tokens in text, of grapheme and whitespace cases,
/// and of every vocabulary entry as text. Ids must match id for id.
/// </summary>
public sealed class HuggingFaceUnigramFixtureTests
{
    private static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "unigram-json");

    private static readonly string[] Fixtures = ["t5-converter", "t5-hub-legacy", "unigram-byte-fallback-first", "unigram-never-unsplit", "unigram-normalized-added"];

    [TestCaseSource(nameof(Fixtures))]
    public void CasesGiveTheOracleIds(string name) => AssertOracleIds(name, "cases", entry => entry.GetProperty("text").GetString()!);

    [TestCaseSource(nameof(Fixtures))]
    public void EveryVocabularyEntryAsTextGivesTheOracleIds(string name) =>
        AssertOracleIds(name, "pieces", entry => Load(name).TokenText(entry.GetProperty("id").GetInt32()).Replace('▁', ' '));

    [TestCase("t5-converter")]
    [TestCase("t5-hub-legacy")]
    public void EosIsWhatTheTemplateAppends(string name)
    {
        var special = Read(name).GetProperty("withSpecialTokens");
        int[] expected = Ids(special.GetProperty("ids"));
        var tokenizer = Load(name);
        Assert.That(tokenizer.EosId, Is.EqualTo(expected[^1]));
        Assert.That(tokenizer.Encode(special.GetProperty("text").GetString()!).Append(tokenizer.EosId!.Value), Is.EqualTo(expected));
        Assert.That(tokenizer.PadId, Is.EqualTo(0));
        Assert.That(tokenizer.BosId, Is.Null);
    }

    /// <summary>
    /// spiece.model and its tokenizer.json twin load into different code (sentencepiece's normalizer and float Viterbi,
    /// Hugging Face's Precompiled, Metaspace and float64 Viterbi); where the two oracles give the same ids, so must we.
    /// </summary>
    [TestCase("t5-converter")]
    [TestCase("t5-hub-legacy")]
    public void SpieceModelAndItsTokenizerJsonTwinAgreeWhereTheOraclesDo(string name)
    {
        var sentencePieceFixture = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, "..", "sentencepiece", "t5-style.json"))).RootElement;
        var sentencePiece = SentencePieceTextTokenizer.Load(Path.Combine(Root, "..", "sentencepiece", "t5-style.model"), SpecialTokenNames.None);
        var huggingFace = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var c in Read(name).GetProperty("cases").EnumerateArray()) huggingFace.TryAdd(c.GetProperty("text").GetString()!, Ids(c.GetProperty("ids")));
        var unigram = Load(name);
        int agreeing = 0;
        var differences = new List<string>();
        foreach (var entry in sentencePieceFixture.GetProperty("cases").EnumerateArray())
        {
            string text = entry.GetProperty("text").GetString()!;
            if (!Ids(entry.GetProperty("ids")).SequenceEqual(huggingFace[text])) continue;
            agreeing++;
            int[] fromModel = sentencePiece.Encode(text), fromJson = unigram.Encode(text);
            if (!fromModel.SequenceEqual(fromJson)) differences.Add($"{VocabFiles.Quote(text)}: spiece.model [{string.Join(", ", fromModel)}], tokenizer.json [{string.Join(", ", fromJson)}]");
        }
        Assert.That(agreeing, Is.GreaterThan(300), "the oracles should agree on all but the equal-score ties");
        Assert.That(differences, Is.Empty);
    }

    private static void AssertOracleIds(string name, string list, Func<JsonElement, string> textOf)
    {
        var fixture = Read(name);
        var tokenizer = Load(name);
        var mismatches = new List<string>();
        int count = 0;
        foreach (var entry in fixture.GetProperty(list).EnumerateArray())
        {
            string text = textOf(entry);
            int[] expected = Ids(entry.GetProperty("ids"));
            int[] ours = tokenizer.Encode(text);
            count++;
            if (!ours.SequenceEqual(expected)) mismatches.Add($"{VocabFiles.Quote(text)}: expected [{string.Join(", ", expected)}], ours [{string.Join(", ", ours)}]");
        }
        Assert.That(count, Is.GreaterThan(0));
        Assert.That(mismatches, Is.Empty, $"{mismatches.Count} of {count} strings differ from {fixture.GetProperty("oracle").GetString()}");
    }

    private static JsonElement Read(string name) => JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, name + ".json"))).RootElement;

    private static int[] Ids(JsonElement ids) => [.. ids.EnumerateArray().Select(id => id.GetInt32())];

    private static readonly Dictionary<string, ITextTokenizer> Loaded = [];

    /// <summary>Through <see cref="TokenizerLoader"/>: each fixture is a directory holding only tokenizer.json.</summary>
    private static ITextTokenizer Load(string name)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(name, out var tokenizer))
            {
                Loaded[name] = tokenizer = TokenizerLoader.Load(Path.Combine(Root, name));
                Assert.That(tokenizer, Is.TypeOf<UnigramTokenizer>());
            }
            return tokenizer;
        }
    }
}
