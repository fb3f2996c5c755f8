using System.Text;
using System.Text.Json;

namespace SoftPrompt.Tests.Text;

/// <summary>
/// A hand-made GPT-2-style byte-level BPE: the 256 byte symbols (ids 0..255 in byte order), one token per merge in
/// merge order, then &lt;|endoftext|&gt;. Small enough to work out expected splits by hand.
/// </summary>
public static class Gpt2TestVocab
{
    /// <summary>Merges by priority. " lower" → Ġ l o w e r → Ġ lo w e r → Ġ low e r → Ġ low er → Ġlow er → Ġlower.</summary>
    public static readonly string[] Merges =
    [
        "Ġ t",     // Ġt
        "h e",     // he
        "Ġt he",   // Ġthe
        "l o",     // lo
        "lo w",    // low
        "e r",     // er
        "Ġ low",   // Ġlow
        "Ġlow er", // Ġlower
        "Ġ Ġ",     // ĠĠ
    ];

    public static Dictionary<string, int> Vocab()
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocab[ByteSymbol((byte)b)] = b;
        foreach (string merge in Merges) vocab[merge.Replace(" ", "")] = vocab.Count;
        vocab["<|endoftext|>"] = vocab.Count;
        return vocab;
    }

    public static int EndOfText => 256 + Merges.Length;

    /// <summary>GPT-2's printable spelling of a byte, worked out independently of the library's table.</summary>
    public static string ByteSymbol(byte b)
    {
        static bool Printable(int x) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
        if (Printable(b)) return ((char)b).ToString();
        int rank = 0;
        for (int x = 0; x < b; x++) if (!Printable(x)) rank++;
        return ((char)(256 + rank)).ToString();
    }

    public static string VocabJson() => JsonSerializer.Serialize(Vocab());

    public static string MergesTxt() => "#version: 0.2\n" + string.Join("\n", Merges) + "\n";

    /// <summary>A tokenizer.json with the same vocabulary; merges as "a b" strings or, when <paramref name="pairMerges"/>, as ["a", "b"].</summary>
    public static string TokenizerJson(bool pairMerges = false, string? preTokenizer = null, string normalizer = "null", string modelType = "BPE",
        string addedTokens = "[{\"id\": 265, \"content\": \"<|endoftext|>\", \"special\": true}]")
    {
        object merges = pairMerges ? Merges.Select(m => m.Split(' ')).ToArray() : Merges;
        var json = new StringBuilder();
        json.Append("{\"version\": \"1.0\", \"added_tokens\": ").Append(addedTokens);
        json.Append(", \"normalizer\": ").Append(normalizer);
        json.Append(", \"pre_tokenizer\": ").Append(preTokenizer ?? "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}");
        json.Append(", \"model\": {\"type\": \"").Append(modelType).Append("\", \"vocab\": ").Append(VocabJson());
        json.Append(", \"merges\": ").Append(JsonSerializer.Serialize(merges)).Append("}}");
        return json.ToString();
    }

    public static void WriteVocabAndMerges(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "vocab.json"), VocabJson());
        File.WriteAllText(Path.Combine(dir, "merges.txt"), MergesTxt());
    }
}
