using SoftPrompt.Tests.Text;

namespace SoftPrompt.Tests.T5;

/// <summary>
/// The v1_1 fixture model copied into a temp directory with a T5-like SentencePiece tokenizer (spiece.model:
/// &lt;pad&gt;=0, &lt;/s&gt;=1, &lt;unk&gt;=2, then 13 pieces, or its tokenizer.json twin alone, as repositories without
/// spiece.model ship it), so the text-data and tokenizer paths run on a T5 checkpoint.
/// </summary>
internal static class T5TextModel
{
    public const int Eos = 1, Hello = 5, The = 4;

    public static string Create(string parent, bool tokenizerJson = false)
    {
        string directory = Path.Combine(parent, "t5-text");
        Directory.CreateDirectory(directory);
        foreach (string file in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(T5Fixture.Root, "v1_1", file), Path.Combine(directory, file));
        if (tokenizerJson) File.WriteAllText(Path.Combine(directory, "tokenizer.json"), SentencePieceModelBuilder.T5LikeTokenizerJson());
        else File.WriteAllBytes(Path.Combine(directory, "spiece.model"), SentencePieceModelBuilder.T5Like());
        return directory;
    }

    /// <summary>Rows {"text", "label"} whose label is "pos" for texts that start with hello, "neg" otherwise.</summary>
    public static string Data(string parent, string name = "text.jsonl")
    {
        string[] texts = ["hello world", "the world", "hello the", "world hello", "hello hello world", "the the", "hello", "world the hello"];
        string path = Path.Combine(parent, name);
        File.WriteAllLines(path, texts.Select(t => $"{{\"text\": \"{t}\", \"label\": \"{(t.StartsWith("hello", StringComparison.Ordinal) ? "pos" : "neg")}\", \"answer\": \"{t.Split(' ')[0]}\"}}"));
        return path;
    }
}
