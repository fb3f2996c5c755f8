namespace SoftPrompt.Text;

/// <summary>Both directions of a vocabulary (token ⇄ id), shared by the tokenizers for lookups, TokenText and id checks.</summary>
internal sealed class TokenIndex
{
    private readonly Dictionary<string, int> ids;
    private readonly string?[] texts;

    public TokenIndex(IEnumerable<KeyValuePair<string, int>> entries)
    {
        ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in entries) ids.TryAdd(token, id);
        texts = new string?[ids.Count == 0 ? 0 : ids.Values.Max() + 1];
        foreach (var (token, id) in ids) texts[id] ??= token;
    }

    /// <summary>One past the largest id.</summary>
    public int Size => texts.Length;

    public int? Find(string token) => ids.TryGetValue(token, out int id) ? id : null;

    public bool Contains(int id) => (uint)id < (uint)texts.Length && texts[id] is not null;

    /// <summary>The token's text; ids the vocabulary lacks (a model's padded embedding rows) read "&lt;id N&gt;" so listings never fail.</summary>
    public string Text(int id) => Contains(id) ? texts[id]! : $"<id {id}>";

    public void CheckDecodable(ReadOnlySpan<int> tokens)
    {
        foreach (int id in tokens)
            if (!Contains(id))
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"Token id {id} is not in the tokenizer's vocabulary (size {Size}).");
    }
}
