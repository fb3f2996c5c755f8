namespace SoftPrompt.Text;

/// <summary>
/// Text ⇄ token ids for one checkpoint. <see cref="Encode"/> never adds BOS/EOS: where they go is a dataset
/// decision (<see cref="TokenizeOptions"/>), not the tokenizer's, so every caller sees the same raw ids.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>What was loaded, for logs: format, source files, vocabulary size.</summary>
    string Description { get; }

    /// <summary>One past the largest id the tokenizer can produce (ids may have gaps below it).</summary>
    int VocabSize { get; }
    int? BosId { get; }
    int? EosId { get; }
    int? PadId { get; }

    /// <summary>Ids for <paramref name="text"/>; a <see cref="DataException"/> when the text cannot be encoded.</summary>
    int[] Encode(string text);

    string Decode(ReadOnlySpan<int> ids);

    /// <summary>The vocabulary's own spelling of one token ("Ġthe", "▁the", a symbol), as Hugging Face's convert_ids_to_tokens shows it.</summary>
    string TokenText(int id);
}
