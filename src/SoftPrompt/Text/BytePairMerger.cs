using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace SoftPrompt.Text;

/// <summary>
/// The BPE model of a byte-level tokenizer, as Hugging Face's applies it to one pre-tokenized piece: spell the piece's
/// UTF-8 bytes with <see cref="ByteLevelAlphabet"/>, then repeatedly apply the best-ranked merge among adjacent
/// tokens, the leftmost on ties. With ignore_merges (Llama 3) a piece that is itself a vocabulary entry is that token.
/// </summary>
internal sealed class BytePairMerger
{
    private const int CacheCapacity = 100_000;

    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> vocab;
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> merges = [];
    private readonly int[] byteIds = new int[256];
    private readonly bool ignoreMerges;
    private readonly ConcurrentDictionary<string, int[]> cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> cacheBySpan;

    /// <param name="vocab">Must spell every byte (see <see cref="ByteLevelAlphabet.FirstMissingByte"/>) and hold both halves and the result of every merge.</param>
    public BytePairMerger(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, bool ignoreMerges)
    {
        this.vocab = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int b = 0; b < 256; b++) byteIds[b] = vocab[ByteLevelAlphabet.Symbols[b].ToString()];
        // A pair listed twice keeps its first (best) rank, as Hugging Face's BPE builder does.
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            this.merges.TryAdd((vocab[left], vocab[right]), (rank, vocab[left + right]));
        }
        this.ignoreMerges = ignoreMerges;
        cacheBySpan = cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public void Encode(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (!cacheBySpan.TryGetValue(piece, out int[]? tokens))
        {
            tokens = Tokens(piece);
            if (cache.Count < CacheCapacity) cacheBySpan.TryAdd(piece, tokens);
        }
        ids.AddRange(tokens);
    }

    private int[] Tokens(ReadOnlySpan<char> piece)
    {
        byte[]? rented = null;
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        Span<byte> bytes = maxBytes <= 512 ? stackalloc byte[maxBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            bytes = bytes[..Encoding.UTF8.GetBytes(piece, bytes)];
            if (ignoreMerges && WholeToken(bytes) is int whole) return [whole];
            return Merge(bytes);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private int? WholeToken(ReadOnlySpan<byte> bytes)
    {
        char[]? rented = null;
        Span<char> symbols = bytes.Length <= 512 ? stackalloc char[bytes.Length] : (rented = ArrayPool<char>.Shared.Rent(bytes.Length));
        try
        {
            for (int i = 0; i < bytes.Length; i++) symbols[i] = ByteLevelAlphabet.Symbols[bytes[i]];
            return vocab.TryGetValue(symbols[..bytes.Length], out int id) ? id : null;
        }
        finally
        {
            if (rented is not null) ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Hugging Face's merge loop: a queue of candidate merges ordered by (rank, position); an entry whose pair has
    /// since changed into one that merges to another token is stale and skipped.
    /// </summary>
    private int[] Merge(ReadOnlySpan<byte> bytes)
    {
        int n = bytes.Length;
        if (n == 0) return [];
        var token = new int[n];
        var next = new int[n];
        var previous = new int[n];
        for (int i = 0; i < n; i++)
        {
            token[i] = byteIds[bytes[i]];
            next[i] = i + 1 < n ? i + 1 : -1;
            previous[i] = i - 1;
        }
        var queue = new PriorityQueue<(int Position, int Merged), long>();
        void Offer(int position)
        {
            int right = next[position];
            if (right >= 0 && merges.TryGetValue((token[position], token[right]), out var merge))
                queue.Enqueue((position, merge.Merged), ((long)merge.Rank << 32) | (uint)position);
        }
        for (int i = 0; i + 1 < n; i++) Offer(i);
        int count = n;
        while (queue.TryDequeue(out var candidate, out _))
        {
            int left = candidate.Position, right = next[left];
            if (token[left] < 0 || right < 0
                || !merges.TryGetValue((token[left], token[right]), out var merge) || merge.Merged != candidate.Merged) continue;
            token[left] = merge.Merged;
            token[right] = -1;
            next[left] = next[right];
            if (next[left] >= 0) previous[next[left]] = left;
            count--;
            if (previous[left] >= 0) Offer(previous[left]);
            Offer(left);
        }
        var tokens = new int[count];
        for (int i = 0, k = 0; i >= 0; i = next[i]) tokens[k++] = token[i];
        return tokens;
    }
}
