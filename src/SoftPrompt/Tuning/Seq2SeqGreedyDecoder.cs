using System.Numerics.Tensors;
using SoftPrompt.Engines;

namespace SoftPrompt.Tuning;

/// <summary>
/// Greedy generation for encoder-decoder engines (T5): each row's prompt + input is the encoder input, and the
/// tokens generated so far are the decoder's targets. Each step re-runs the forward pass (no cache yet) with one
/// placeholder target behind the generated ones and takes the argmax at that position; a decoder position never
/// reads its own target, so the placeholder's value does not matter.
/// </summary>
public static class Seq2SeqGreedyDecoder
{
    public static int[][] Generate(IEncoderDecoderEngine engine, IReadOnlyList<int[]> inputs, int maxNewTokens, int? stopToken, int batchSize = 32, int promptIndex = 0)
        => Generate(engine, inputs, Enumerable.Repeat(promptIndex, inputs.Count).ToArray(), maxNewTokens, stopToken, batchSize);

    /// <summary>Decodes row i with prompt <paramref name="promptIndices"/>[i]; rows of different prompts share batches.</summary>
    public static int[][] Generate(IEncoderDecoderEngine engine, IReadOnlyList<int[]> inputs, IReadOnlyList<int> promptIndices, int maxNewTokens, int? stopToken, int batchSize = 32)
    {
        if (promptIndices.Count != inputs.Count) throw new ArgumentException($"{inputs.Count} inputs but {promptIndices.Count} prompt indices.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNewTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var outputs = new int[inputs.Count][];
        if (inputs.Count == 0) return outputs;
        // The decoder is a stack of its own: it may run as long as the model's limit, whatever the input.
        maxNewTokens = Math.Min(maxNewTokens, engine.MaxPositions);
        int longestInput = inputs.Max(i => i.Length);
        var batch = new TokenBatch(batchSize, longestInput + maxNewTokens, engine.RequirePrompts());
        var logits = new float[batchSize * maxNewTokens * engine.VocabSize];
        int vocab = engine.VocabSize;
        for (int start = 0; start < inputs.Count; start += batchSize)
        {
            int rows = Math.Min(batchSize, inputs.Count - start);
            var generated = Enumerable.Range(0, rows).Select(_ => new List<int> { 0 }).ToArray(); // [generated…, placeholder]
            var finished = new bool[rows];
            for (int step = 0; step < maxNewTokens && finished.Contains(false); step++)
            {
                batch.Reset(Enumerable.Range(0, rows).Max(r => inputs[start + r].Length) + step + 1);
                for (int r = 0; r < rows; r++) batch.AddRow(inputs[start + r], System.Runtime.InteropServices.CollectionsMarshal.AsSpan(generated[r]), promptIndices[start + r]);
                engine.DecoderLogits(batch, logits);
                for (int r = 0; r < rows; r++)
                {
                    // Every row has step + 1 targets, so the decoder length is step + 1 and position `step` is the placeholder's.
                    int next = TensorPrimitives.IndexOfMax<float>(logits.AsSpan((r * (step + 1) + step) * vocab, vocab));
                    if (finished[r]) next = 0; // keeps the row's shape; cut below
                    generated[r][step] = next;
                    generated[r].Add(0);
                    if (!finished[r] && next == stopToken) finished[r] = true;
                }
            }
            for (int r = 0; r < rows; r++)
            {
                var tokens = generated[r];
                int stop = stopToken is { } s ? tokens.IndexOf(s) : -1;
                outputs[start + r] = [.. tokens.Take(stop >= 0 ? stop + 1 : tokens.Count - 1)];
            }
        }
        return outputs;
    }
}
