using System.Numerics.Tensors;
using SoftPrompt.Distributed;
using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>
/// Greedy generation with a prompt, batched over rows of unequal length, continuously: a finished row's slot goes
/// to the next waiting input. With a KV-cached engine (<see cref="IPromptEngine.OpenDecoding"/>) each step runs only the
/// new tokens: a new row's input, every other row's last token. Otherwise each step re-runs the forward pass over the
/// rows so far (cost grows with the square of the generated length) and takes the argmax at each row's own last
/// position; rows stay right-padded, so the soft prompt always sits directly before each row's first real token.
/// </summary>
public static class GreedyDecoder
{
    /// <summary>
    /// How many tokens <see cref="Generate(IPromptEngine, IReadOnlyList{int[]}, IReadOnlyList{int}, int, int?, int)"/> decodes
    /// at most for these inputs: <paramref name="maxNewTokens"/>, capped by the positions the model has left after the
    /// longest prompt and input (decoder-only) or by its decoder length (encoder-decoder).
    /// </summary>
    public static int NewTokenLimit(IPromptEngine engine, IReadOnlyList<int[]> inputs, int maxNewTokens)
    {
        if (engine is IEncoderDecoderEngine) return Math.Min(maxNewTokens, engine.MaxPositions);
        int longestInput = inputs.Count == 0 ? 0 : inputs.Max(i => i.Length);
        int longestPrompt = engine.RequirePrompts().MaxLength;
        int room = engine.MaxPositions - longestPrompt - longestInput;
        if (room <= 0) throw new ArgumentException($"An input of {longestInput} tokens leaves no room after a prompt of {longestPrompt} in {engine.MaxPositions} positions.");
        return Math.Min(maxNewTokens, room);
    }

    public static int[][] Generate(IPromptEngine engine, IReadOnlyList<int[]> inputs, int maxNewTokens, int? stopToken, int batchSize = 32, int promptIndex = 0)
        => Generate(engine, inputs, Enumerable.Repeat(promptIndex, inputs.Count).ToArray(), maxNewTokens, stopToken, batchSize);

    /// <summary>
    /// Decodes row i with prompt <paramref name="promptIndices"/>[i]: rows of different prompts share batches (one
    /// frozen model serving several tasks, or an ensemble's prompts, in one forward pass per step).
    /// </summary>
    public static int[][] Generate(IPromptEngine engine, IReadOnlyList<int[]> inputs, IReadOnlyList<int> promptIndices, int maxNewTokens, int? stopToken, int batchSize = 32)
        => Generate(engine, inputs, promptIndices, maxNewTokens, stopToken, batchSize, useCache: true);

    /// <summary>
    /// As above, drawing each token as <paramref name="sampling"/> says when it is given (greedy otherwise) and ending a
    /// row at <paramref name="stopStrings"/> too; without <paramref name="useCache"/> every step re-runs the whole
    /// sequences (the reference cached decoding is tested and benchmarked against). With a <paramref name="processes"/>
    /// group of N &gt; 1 each rank decodes its contiguous share of the rows and every rank receives all the answers
    /// (<see cref="RowShares"/>); the token limit, the choice of the cache and each row's sampling generator are those of
    /// the whole list. Continuous batching cannot replay one process's slot schedule on a share, and a logit's last bits
    /// depend on the rows sharing its step, so only a near tie between two tokens could decode differently from one process.
    /// </summary>
    public static int[][] Generate(IPromptEngine engine, IReadOnlyList<int[]> inputs, IReadOnlyList<int> promptIndices, int maxNewTokens, int? stopToken, int batchSize,
        bool useCache, Sampling? sampling = null, StopStrings? stopStrings = null, IProcessGroup? processes = null)
    {
        sampling?.Validate();
        stopStrings?.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNewTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (promptIndices.Count != inputs.Count) throw new ArgumentException($"{inputs.Count} inputs but {promptIndices.Count} prompt indices.");
        var outputs = new int[inputs.Count][];
        if (inputs.Count == 0) return outputs;
        if (processes is { Size: > 1 })
        {
            int limit = NewTokenLimit(engine, inputs, maxNewTokens);
            bool cache = useCache && (engine is IEncoderDecoderEngine || inputs.All(i => i.Length > 0));
            return RowShares.AllGather(processes, inputs.Count, (start, count) => Generate(engine, new ArraySegment<int[]>([.. inputs], start, count),
                new ArraySegment<int>([.. promptIndices], start, count), limit, stopToken, batchSize, cache, sampling is null ? null : sampling with { FirstRow = sampling.FirstRow + start }, stopStrings));
        }
        int longestInput = inputs.Max(i => i.Length);
        maxNewTokens = NewTokenLimit(engine, inputs, maxNewTokens);
        bool encoderDecoder = engine is IEncoderDecoderEngine;
        // Decoder-only: a row without input tokens continues from its prompt's last position, which the cache keeps no
        // hidden state of. Encoder-decoder: a slot holds its input (encoder) and its generated tokens (decoder) apart.
        bool cached = useCache && (encoderDecoder || inputs.All(i => i.Length > 0));
        int tokensPerSlot = encoderDecoder ? Math.Max(longestInput, maxNewTokens) : longestInput + maxNewTokens;
        using (var session = cached ? engine.OpenDecoding(Math.Min(batchSize, inputs.Count), tokensPerSlot) : null)
            if (session is not null)
            {
                Cached(session, inputs, promptIndices, maxNewTokens, stopToken, outputs, sampling, stopStrings, engine.VocabSize);
                return outputs;
            }
        if (engine is IEncoderDecoderEngine seq2seq)
        {
            if (sampling is not null) throw new NotSupportedException("Sampling from an encoder-decoder model (T5) needs its KV-cached session; decode greedily without the cache.");
            return Seq2SeqGreedyDecoder.Generate(seq2seq, inputs, promptIndices, maxNewTokens, stopToken, batchSize, stopStrings);
        }
        var batch = new TokenBatch(batchSize, longestInput + maxNewTokens, engine.RequirePrompts());
        var nextTokens = new int[batchSize];
        var sampler = sampling is null ? null : new TokenSampler(sampling, engine.VocabSize);
        var logits = sampling is null ? [] : new float[batchSize * engine.VocabSize];
        var randoms = sampling is null ? [] : inputs.Select((_, i) => sampling.RowRandom(i)).ToArray();
        // Continuous batching: a row that finishes hands its slot to the next waiting input, so the batch stays full
        // and the step count follows the total generated length rather than each chunk's longest answer.
        var slots = new int[batchSize];
        var sequences = new List<int>[batchSize];
        var generated = new List<int>[batchSize];
        int active = 0, next = 0;
        void Fill()
        {
            while (active < batchSize && next < inputs.Count)
            {
                slots[active] = next;
                sequences[active] = new List<int>(inputs[next]);
                generated[active] = [];
                active++;
                next++;
            }
        }
        Fill();
        while (active > 0)
        {
            int longest = 1;
            for (int r = 0; r < active; r++) longest = Math.Max(longest, sequences[r].Count);
            batch.Reset(longest);
            for (int r = 0; r < active; r++) batch.AddDecodingRow(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequences[r]), promptIndices[slots[r]]);
            if (sampler is null) engine.NextTokens(batch, nextTokens);
            else
            {
                engine.NextTokenLogits(batch, logits);
                for (int r = 0; r < active; r++) nextTokens[r] = sampler.Sample(logits.AsSpan(r * engine.VocabSize, engine.VocabSize), randoms[slots[r]]);
            }
            int kept = 0;
            for (int r = 0; r < active; r++)
            {
                int token = nextTokens[r];
                generated[r].Add(token);
                sequences[r].Add(token);
                if (token == stopToken || generated[r].Count == maxNewTokens || stopStrings?.Ends(generated[r]) == true)
                {
                    outputs[slots[r]] = [.. generated[r]];
                    continue;
                }
                (slots[kept], sequences[kept], generated[kept]) = (slots[r], sequences[r], generated[r]);
                kept++;
            }
            active = kept;
            Fill();
        }
        return outputs;
    }

    /// <summary>Continuous batching over the session's slots: a finished row's slot begins the next waiting input.</summary>
    private static void Cached(IDecodingSession session, IReadOnlyList<int[]> inputs, IReadOnlyList<int> promptIndices, int maxNewTokens, int? stopToken, int[][] outputs,
        Sampling? sampling, StopStrings? stopStrings, int vocabSize)
    {
        var sampler = sampling is null ? null : new TokenSampler(sampling, vocabSize);
        var logits = sampling is null ? [] : new float[session.Slots * vocabSize];
        var randoms = new Random?[session.Slots];
        int slotCount = session.Slots;
        var rowOfSlot = new int[slotCount];
        var generated = new List<int>[slotCount];
        var active = new int[slotCount];
        var nextTokens = new int[slotCount];
        int activeCount = 0, next = 0;
        for (int slot = 0; slot < slotCount; slot++) generated[slot] = [];
        void Begin(int slot)
        {
            rowOfSlot[slot] = next;
            randoms[slot] = sampling?.RowRandom(next);
            generated[slot].Clear();
            session.Begin(slot, promptIndices[next], inputs[next]);
            active[activeCount++] = slot;
            next++;
        }
        for (int slot = 0; slot < slotCount && next < inputs.Count; slot++) Begin(slot);
        while (activeCount > 0)
        {
            if (sampler is null) session.NextTokens(active.AsSpan(0, activeCount), nextTokens);
            else
            {
                session.NextTokenLogits(active.AsSpan(0, activeCount), logits);
                for (int r = 0; r < activeCount; r++) nextTokens[r] = sampler.Sample(logits.AsSpan(r * vocabSize, vocabSize), randoms[active[r]]!);
            }
            int stepRows = activeCount;
            activeCount = 0;
            for (int r = 0; r < stepRows; r++)
            {
                int slot = active[r], token = nextTokens[r];
                generated[slot].Add(token);
                if (token == stopToken || generated[slot].Count == maxNewTokens || stopStrings?.Ends(generated[slot]) == true)
                {
                    outputs[rowOfSlot[slot]] = [.. generated[slot]];
                    if (next < inputs.Count) Begin(slot);
                    continue;
                }
                session.Append(slot, token);
                active[activeCount++] = slot;
            }
        }
    }
}
