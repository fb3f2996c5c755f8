using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// Hugging Face's Unigram model (tokenizers' models/unigram/model.rs, encode_optimized), which differs from
/// sentencepiece's in ways that change ids: every vocabulary entry can be matched in text (control pieces and
/// &lt;0xXX&gt; byte pieces too), scores are summed in float64 so equal-score paths tie exactly and the first found
/// wins, an unknown character costs the lowest score of the whole vocabulary minus 10, a run of unknown characters is
/// fused into one piece (fuse_unk, always on), and only a fused piece the vocabulary lacks becomes &lt;unk&gt; or, with
/// byte_fallback, its UTF-8 bytes.
/// </summary>
internal sealed class UnigramModel
{
    private const double UnknownPenalty = 10;

    private readonly (string Piece, double Score)[] vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup;
    private readonly int? unknownId;
    private readonly bool byteFallback;
    private readonly int longestPiece;
    private readonly double unknownScore;
    private readonly string source;

    public UnigramModel((string Piece, double Score)[] vocab, int? unknownId, bool byteFallback, string source)
    {
        this.vocab = vocab;
        this.unknownId = unknownId;
        this.byteFallback = byteFallback;
        this.source = source;
        var ids = new Dictionary<string, int>(vocab.Length, StringComparer.Ordinal);
        for (int id = 0; id < vocab.Length; id++) ids.Add(vocab[id].Piece, id);
        lookup = ids.GetAlternateLookup<ReadOnlySpan<char>>();
        longestPiece = vocab.Max(v => v.Piece.Length);
        unknownScore = vocab.Min(v => v.Score) - UnknownPenalty;
    }

    /// <summary>Appends the ids of one pre-tokenized piece.</summary>
    public void Encode(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        foreach (string piece in BestPath(text))
        {
            if (lookup.TryGetValue(piece, out int id)) ids.Add(id);
            else if (byteFallback && ByteIds(piece) is { } bytes) ids.AddRange(bytes);
            else ids.Add(unknownId ?? throw MissingUnknown(piece));
        }
    }

    /// <summary>The best segmentation's pieces, runs of unknown characters fused into one.</summary>
    private List<string> BestPath(string text)
    {
        int n = text.Length;
        // For each end position: the best path's score, where its last piece starts (-1: not reached yet) and its id.
        var best = new (double Score, int Start, int Id)[n + 1];
        for (int i = 1; i <= n; i++) best[i].Start = -1;
        for (int start = 0; start < n; start += SentencePieceEncoder.CharLength(text, start))
        {
            double tillHere = best[start].Score;
            int charLength = SentencePieceEncoder.CharLength(text, start);
            bool coversOneChar = false;
            for (int end = start + 1; end <= Math.Min(n, start + longestPiece); end++)
            {
                if (!lookup.TryGetValue(text.AsSpan(start, end - start), out int id)) continue;
                Relax(best, end, vocab[id].Score + tillHere, start, id);
                if (end - start == charLength) coversOneChar = true;
            }
            if (!coversOneChar) Relax(best, start + charLength, unknownScore + tillHere, start, unknownId ?? throw MissingUnknown(text.Substring(start, charLength)));
        }
        var pieces = new List<string>();
        int fusedEnd = -1;
        for (int end = n; end > 0; end = best[end].Start)
        {
            var (_, start, id) = best[end];
            bool unknown = id == unknownId;
            if (unknown && fusedEnd < 0) fusedEnd = end;
            if (!unknown && fusedEnd >= 0) { pieces.Add(text[end..fusedEnd]); fusedEnd = -1; }
            if (!unknown) pieces.Add(text[start..end]);
        }
        if (fusedEnd >= 0) pieces.Add(text[..fusedEnd]);
        pieces.Reverse();
        return pieces;
    }

    // Strictly greater: among equal scores the path found first (the one whose last piece starts earliest) stays.
    private static void Relax((double Score, int Start, int Id)[] best, int end, double candidate, int start, int id)
    {
        if (best[end].Start == -1 || candidate > best[end].Score) best[end] = (candidate, start, id);
    }

    private DataException MissingUnknown(string text) =>
        new($"{source}: the text has {VocabFiles.Quote(text)}, which the vocabulary cannot spell, and model.unk_id is null.");

    private int[]? ByteIds(string piece)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(piece);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
            if (!lookup.TryGetValue($"<0x{bytes[i]:X2}>", out ids[i])) return null;
        return ids;
    }
}
