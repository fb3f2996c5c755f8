using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>
/// Our byte-level BPE against Hugging Face's tokenizers (the Rust library, through its npm binding) on the fixtures
/// tools/tokenizers/make_bpe_fixtures.js writes: GPT-2's real vocabulary under the pre-tokenizers of GPT-2, Llama 3,
/// Qwen2, GPT-4o and SmolLM (multilingual text, code, whitespace runs, astral-plane letters and digits, every kind of
/// digit, random strings, every vocabulary entry as text), and a tiny vocabulary for ignore_merges. Ids must match id for id.
/// </summary>
public sealed class HuggingFaceBpeFixtureTests : TextTestDirectory
{
    private static string Root => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "tokenizers");

    private static readonly string[] Fixtures =
        ["gpt2", "gpt2-prefix-space", "llama3-style", "qwen2-style", "gpt4o-style", "smollm-style", "tiny-ignore-merges-true", "tiny-ignore-merges-false"];

    private static readonly Lazy<(Dictionary<string, int> Vocab, string[] Merges)> Gpt2 = new(ReadGpt2);

    [TestCaseSource(nameof(Fixtures))]
    public void TokenizerJsonGivesTheOracleIds(string name)
    {
        var fixture = Read(name);
        AssertOracleIds(FromTokenizerJson(fixture), fixture);
    }

    [Test]
    public void VocabAndMergesGiveTheOracleIdsOfGpt2()
    {
        var (vocab, merges) = Gpt2.Value;
        File.WriteAllText(PathOf("vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllText(PathOf("merges.txt"), "#version: 0.2\n" + string.Join("\n", merges) + "\n");
        var tokenizer = TokenizerLoader.Load(Dir);
        Assert.That(tokenizer.Description, Does.Contain("vocab.json + merges.txt"));
        AssertOracleIds(tokenizer, Read("gpt2"));
    }

    [TestCase("gpt2")]
    [TestCase("llama3-style")]
    public void EveryVocabularyEntryAsTextGivesTheOracleIds(string name)
    {
        var fixture = Read(name);
        var tokenizer = FromTokenizerJson(fixture);
        var exceptions = fixture.GetProperty("vocabularyExceptions").EnumerateArray()
            .ToDictionary(e => e.GetProperty("id").GetInt32(), e => Ids(e.GetProperty("ids")));
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var byteOf = Enumerable.Range(0, 256).ToDictionary(b => Gpt2TestVocab.ByteSymbol((byte)b)[0], b => (byte)b);
        int tested = 0;
        var mismatches = new List<string>();
        foreach (var (token, id) in Gpt2.Value.Vocab)
        {
            if (!token.All(byteOf.ContainsKey)) continue;
            string text;
            try { text = strict.GetString([.. token.Select(c => byteOf[c])]); }
            catch (DecoderFallbackException) { continue; }
            tested++;
            int[] expected = exceptions.GetValueOrDefault(id, [id]);
            int[] ours = tokenizer.Encode(text);
            if (!ours.SequenceEqual(expected)) mismatches.Add($"{VocabFiles.Quote(text)} (id {id}): expected [{string.Join(", ", expected)}], ours [{string.Join(", ", ours)}]");
        }
        Assert.That(tested, Is.EqualTo(fixture.GetProperty("vocabularyEntriesTested").GetInt32()));
        Assert.That(mismatches, Is.Empty, $"{mismatches.Count} of {tested} entries differ");
    }

    private static void AssertOracleIds(ITextTokenizer tokenizer, JsonElement fixture)
    {
        var mismatches = new List<string>();
        int count = 0;
        foreach (var entry in fixture.GetProperty("cases").EnumerateArray())
        {
            string text = entry.GetProperty("text").GetString()!;
            int[] expected = Ids(entry.GetProperty("ids"));
            int[] ours = tokenizer.Encode(text);
            count++;
            if (!ours.SequenceEqual(expected)) mismatches.Add($"{VocabFiles.Quote(text)}: expected [{string.Join(", ", expected)}], ours [{string.Join(", ", ours)}]");
        }
        Assert.That(count, Is.GreaterThan(0));
        Assert.That(mismatches, Is.Empty, $"{mismatches.Count} of {count} strings differ from {fixture.GetProperty("oracle").GetString()}");
    }

    /// <summary>The fixture's tokenizer.json, with GPT-2's vocabulary and merges put back where the fixture names them.</summary>
    private ITextTokenizer FromTokenizerJson(JsonElement fixture)
    {
        var json = JsonNode.Parse(fixture.GetProperty("tokenizer").GetRawText())!.AsObject();
        if (fixture.GetProperty("vocabulary").ValueKind == JsonValueKind.String)
        {
            var (vocab, merges) = Gpt2.Value;
            var model = json["model"]!.AsObject();
            model["vocab"] = new JsonObject(vocab.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)JsonValue.Create(e.Value))));
            model["merges"] = new JsonArray([.. merges.Select(m => (JsonNode?)JsonValue.Create(m))]);
        }
        File.WriteAllText(PathOf("tokenizer.json"), json.ToJsonString());
        return TokenizerLoader.Load(Dir);
    }

    /// <summary>GPT-2's vocabulary rebuilt from its merges (the generator checks this equals encoder.json): byte symbols in code order, one token per merge, &lt;|endoftext|&gt;.</summary>
    private static (Dictionary<string, int>, string[]) ReadGpt2()
    {
        string[] merges = [.. File.ReadLines(Path.Combine(Root, "gpt2-merges.txt")).Skip(1).Where(line => line.Length > 0)];
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokens = Enumerable.Range(0, 256).Select(b => Gpt2TestVocab.ByteSymbol((byte)b)).Order(StringComparer.Ordinal)
            .Concat(merges.Select(m => m.Replace(" ", ""))).Append("<|endoftext|>");
        foreach (string token in tokens) vocab.Add(token, vocab.Count);
        return (vocab, merges);
    }

    private static JsonElement Read(string name) =>
        JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, name + ".json"))).RootElement;

    private static int[] Ids(JsonElement ids) => [.. ids.EnumerateArray().Select(id => id.GetInt32())];

    private static string VocabFilesQuote(string text) => JsonSerializer.Serialize(text);
}
