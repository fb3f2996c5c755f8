using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// SentencePiece's segmentation of normalized text, step for step as Google's library (v0.1.97: unigram_model.cc
/// EncodeOptimized, bpe_model.cc, sentencepiece_processor.cc) so ties resolve the same way: Unigram is a Viterbi search
/// in float arithmetic where the first of equal-score paths wins; BPE merges the best-scoring pair, leftmost first among
/// equals. Unknown characters then become their UTF-8 bytes (byte fallback) or one &lt;unk&gt; per run.
/// </summary>
internal sealed class SentencePieceEncoder
{
    // An unknown character costs this much less than the rarest piece (unigram_model.cc kUnkPenalty).
    private const float UnknownPenalty = 10;

    private readonly SentencePieceModelSpec spec;
    // The pieces segmentation can produce (normal, user-defined, unused); control, unknown and byte pieces are not matched in text.
    private readonly Dictionary<string, int> textPieces = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup;
    private readonly string[] userDefined;
    private readonly int longestPiece;
    private readonly float unknownScore, maxScore;
    private readonly int[] byteIds = new int[256];

    public SentencePieceEncoder(SentencePieceModelSpec spec)
    {
        this.spec = spec;
        var pieces = spec.Pieces;
        for (int id = 0; id < pieces.Length; id++)
        {
            var (piece, _, type) = pieces[id];
            if (type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused) textPieces.TryAdd(piece, id);
            if (type == SentencePieceType.Byte) byteIds[SentencePieceModelSpec.ByteOf(piece)!.Value] = id;
        }
        lookup = textPieces.GetAlternateLookup<ReadOnlySpan<char>>();
        userDefined = [.. pieces.Where(p => p.Type == SentencePieceType.UserDefined).Select(p => p.Piece)];
        longestPiece = textPieces.Keys.Select(p => p.Length).DefaultIfEmpty(0).Max();
        // As unigram_model.cc: over normal pieces, starting from FLT_MAX and FLT_MIN (the smallest positive normal float).
        float minScore = float.MaxValue;
        maxScore = BitConverter.Int32BitsToSingle(0x00800000);
        foreach (var p in pieces.Where(p => p.Type == SentencePieceType.Normal))
        {
            minScore = Math.Min(minScore, p.Score);
            maxScore = Math.Max(maxScore, p.Score);
        }
        unknownScore = minScore - UnknownPenalty;
    }

    public IEnumerable<string> UserDefinedPieces => userDefined;

    public int[] Encode(string normalized)
    {
        if (normalized.Length == 0) return [];
        var segments = spec.ModelType == SentencePieceModelSpec.Bpe ? MergePairs(normalized) : BestPath(normalized);
        var ids = new List<int>(segments.Count);
        bool previousUnknown = false;
        foreach (var (piece, id) in segments)
        {
            bool unknown = id == spec.UnkId;
            if (unknown && spec.ByteFallback) ids.AddRange(Encoding.UTF8.GetBytes(piece).Select(b => byteIds[b]));
            else if (!(unknown && previousUnknown)) ids.Add(id);  // a run of unknown characters is one <unk>
            previousUnknown = unknown;
        }
        return [.. ids];
    }

    /// <summary>Unigram: the highest-scoring segmentation (Viterbi), with the library's float sums and tie order.</summary>
    private List<(string, int)> BestPath(string text)
    {
        int n = text.Length;
        // For each end position: the best path's score, where its last piece starts (-1: not reached yet) and that piece.
        var best = new (float Score, int Start, int Id)[n + 1];
        for (int i = 1; i <= n; i++) best[i].Start = -1;
        for (int start = 0; start < n; start += CharLength(text, start))
        {
            float tillHere = best[start].Score;
            bool coversOneChar = false;
            for (int end = start + 1; end <= Math.Min(n, start + longestPiece); end++)
            {
                if (!lookup.TryGetValue(text.AsSpan(start, end - start), out int id)) continue;
                var piece = spec.Pieces[id];
                if (piece.Type == SentencePieceType.Unused) continue;
                // User-defined pieces get a bonus so they are always chosen. The library's score is a double (its `?:` mixes
                // that bonus with the float scores), so sums are double and compared with the float-rounded best so far.
                double score = piece.Type == SentencePieceType.UserDefined
                    ? (float)(Encoding.UTF8.GetByteCount(piece.Piece) * maxScore) - 0.1
                    : piece.Score;
                double candidate = score + tillHere;
                Relax(best, end, candidate, start, id);
                if (end - start == CharLength(text, start)) coversOneChar = true;
            }
            if (!coversOneChar) Relax(best, start + CharLength(text, start), unknownScore + tillHere, start, spec.UnkId);
        }
        var path = new List<(string, int)>();
        for (int end = n; end > 0; end = best[end].Start) path.Add((text[best[end].Start..end], best[end].Id));
        path.Reverse();
        return path;
    }

    // Strictly greater: among equal scores the path found first (the longer last piece) stays.
    private static void Relax((float Score, int Start, int Id)[] best, int end, double candidate, int start, int id)
    {
        if (best[end].Start == -1 || candidate > best[end].Score) best[end] = ((float)candidate, start, id);
    }

    /// <summary>BPE: start from characters (user-defined pieces whole and frozen), merge the best-scoring adjacent pair, leftmost first.</summary>
    private List<(string, int)> MergePairs(string text)
    {
        var symbols = new List<(int Start, int Length, bool Frozen)>();
        for (int start = 0; start < text.Length;)
        {
            int length = userDefined.Where(u => text.AsSpan(start).StartsWith(u)).Select(u => u.Length).DefaultIfEmpty(0).Max();
            symbols.Add(length > 0 ? (start, length, true) : (start, CharLength(text, start), false));
            start += symbols[^1].Length;
        }
        int count = symbols.Count;
        int[] previous = [.. Enumerable.Range(-1, count)], next = [.. Enumerable.Range(1, count)];
        next[count - 1] = -1;
        // Merged pieces of unused entries, to split again at the end (bpe_model.cc's rev_merge).
        var unusedParts = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        var agenda = new PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)>(
            Comparer<(float Score, int Left)>.Create((a, b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left)));

        void AddPair(int left, int right)
        {
            if (left < 0 || right < 0 || symbols[left].Frozen || symbols[right].Frozen) return;
            int length = symbols[left].Length + symbols[right].Length;
            if (!lookup.TryGetValue(text.AsSpan(symbols[left].Start, length), out int id)) return;
            agenda.Enqueue((left, right, length), (spec.Pieces[id].Score, left));
            if (spec.Pieces[id].Type == SentencePieceType.Unused)
                unusedParts[spec.Pieces[id].Piece] = (Text(left), Text(right));
        }
        string Text(int symbol) => text.Substring(symbols[symbol].Start, symbols[symbol].Length);

        for (int i = 1; i < count; i++) AddPair(i - 1, i);
        while (agenda.TryDequeue(out var pair, out _))
        {
            var (left, right, length) = pair;
            // Stale: one side was merged away or grew since the pair was queued.
            if (symbols[left].Length == 0 || symbols[right].Length == 0 || symbols[left].Length + symbols[right].Length != length) continue;
            symbols[left] = symbols[left] with { Length = length };
            symbols[right] = symbols[right] with { Length = 0 };
            next[left] = next[right];
            if (next[right] >= 0) previous[next[right]] = left;
            AddPair(previous[left], left);
            AddPair(left, next[left]);
        }

        var output = new List<(string, int)>();
        void Resegment(string piece)
        {
            int id = textPieces.GetValueOrDefault(piece, spec.UnkId);
            if (spec.Pieces[id].Type == SentencePieceType.Unused && unusedParts.TryGetValue(piece, out var parts))
            {
                Resegment(parts.Item1);
                Resegment(parts.Item2);
            }
            else output.Add((piece, id));
        }
        for (int symbol = 0; symbol >= 0; symbol = next[symbol]) Resegment(Text(symbol));
        return output;
    }

    /// <summary>One code point: a surrogate pair is one character, as one UTF-8 sequence is in the library.</summary>
    internal static int CharLength(string text, int index) =>
        char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]) ? 2 : 1;
}
