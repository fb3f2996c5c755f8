using System.Numerics.Tensors;
using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>
/// Greedy generation for encoder-decoder engines (T5): each row's prompt + input is the encoder input, and the
/// tokens generated so far are the decoder's targets. Each step re-runs the forward pass (no cache yet) with one
/// placeholder target behind the generated ones and takes the argmax at that position; a decoder position never
/// reads its own target, so the placeholder's value does not matter. Batches continuously: a finished row's slot goes
/// to the next waiting input.
/// </summary>
public static class Seq2SeqGreedyDecoder
{
    public static int[][] Generate(IEncoderDecoderEngine engine, IReadOnlyList<int[]> inputs, int maxNewTokens, int? stopToken, int batchSize = 32, int promptIndex = 0)
        => Generate(engine, inputs, Enumerable.Repeat(promptIndex, inputs.Count).ToArray(), maxNewTokens, stopToken, batchSize);

    /// <summary>Decodes row i with prompt <paramref name="promptIndices"/>[i]; rows of different prompts share batches; a row also ends at <paramref name="stopStrings"/>.</summary>
    public static int[][] Generate(IEncoderDecoderEngine engine, IReadOnlyList<int[]> inputs, IReadOnlyList<int> promptIndices, int maxNewTokens, int? stopToken, int batchSize = 32,
        StopStrings? stopStrings = null)
    {
        stopStrings?.Validate();
        if (promptIndices.Count != inputs.Count) throw new ArgumentException($"{inputs.Count} inputs but {promptIndices.Count} prompt indices.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNewTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var outputs = new int[inputs.Count][];
        if (inputs.Count == 0) return outputs;
        // The decoder is a stack of its own: it may run as long as the model's limit, whatever the input.
        maxNewTokens = Math.Min(maxNewTokens, engine.MaxPositions);
        int longestInput = inputs.Max(i => i.Length);
        var batch = new TokenBatch(batchSize, longestInput + maxNewTokens, engine.RequirePrompts());
        var nextTokens = new int[batchSize];
        // Continuous batching, as GreedyDecoder: a finished row's slot goes to the next waiting input.
        var slots = new int[batchSize];
        var generated = new List<int>[batchSize];  // [generated…, placeholder]
        int active = 0, next = 0;
        void Fill()
        {
            while (active < batchSize && next < inputs.Count)
            {
                slots[active] = next++;
                generated[active++] = [0];
            }
        }
        Fill();
        while (active > 0)
        {
            int longestRow = 0;
            for (int r = 0; r < active; r++) longestRow = Math.Max(longestRow, inputs[slots[r]].Length + generated[r].Count);
            batch.Reset(longestRow);
            for (int r = 0; r < active; r++) batch.AddRow(inputs[slots[r]], System.Runtime.InteropServices.CollectionsMarshal.AsSpan(generated[r]), promptIndices[slots[r]]);
            engine.DecoderNextTokens(batch, nextTokens);  // the argmax at each row's placeholder (its last target position)
            int kept = 0;
            for (int r = 0; r < active; r++)
            {
                var tokens = generated[r];
                int token = nextTokens[r];
                tokens[^1] = token;
                if (token == stopToken || tokens.Count == maxNewTokens || stopStrings?.Ends(tokens) == true)
                {
                    outputs[slots[r]] = [.. tokens];
                    continue;
                }
                tokens.Add(0);
                (slots[kept], generated[kept]) = (slots[r], tokens);
                kept++;
            }
            active = kept;
            Fill();
        }
        return outputs;
    }
}
