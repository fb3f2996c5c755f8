using System.Text.Json;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>Our NFC against Hugging Face tokenizers' NFC normalizer (fixture from tools/tokenizers/make_nfc_table.js).</summary>
public sealed class NfcTests
{
    [Test]
    public void NormalizesAsHuggingFaceDoes()
    {
        string path = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "tokenizers", "nfc.json");
        var cases = JsonDocument.Parse(File.ReadAllBytes(path)).RootElement.GetProperty("cases");
        var differ = new List<string>();
        foreach (var entry in cases.EnumerateArray())
        {
            string input = entry[0].GetString()!, expected = entry[1].GetString()!;
            string ours = Nfc.Apply(input).ToString();
            if (ours != expected) differ.Add($"{VocabFiles.Quote(input)}: expected {VocabFiles.Quote(expected)}, ours {VocabFiles.Quote(ours)}");
        }
        Assert.That(cases.GetArrayLength(), Is.GreaterThan(5000));
        Assert.That(differ, Is.Empty, $"{differ.Count} of {cases.GetArrayLength()} differ");
    }

    [Test]
    public void TextAlreadyInNfcIsReturnedAsIs()
    {
        string text = "Ça coûte 5 €, 日本語, 한국어, हिन्दी";
        Assert.That(Nfc.Apply(text) == text.AsSpan(), Is.True);
    }
}
