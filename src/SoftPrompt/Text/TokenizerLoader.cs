namespace SoftPrompt.Text;

/// <summary>Picks the tokenizer a Hugging Face checkpoint directory ships, in the order its files are most specific.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// spiece.model (T5) or tokenizer.model (Llama) → SentencePiece; tokenizer.json → byte-level BPE, or Unigram for T5
    /// repositories that ship no spiece.model, from its model section (it wins over vocab.json + merges.txt, which Qwen2
    /// and SmolLM ship beside it, because only it holds the added tokens and pre-tokenizer); vocab.json + merges.txt (+ added_tokens.json) → GPT-2 byte-level BPE;
    /// vocab.json alone → symbol vocabulary.
    /// </summary>
    public static ITextTokenizer Load(string modelDir)
    {
        if (!Directory.Exists(modelDir)) throw new DataException($"{modelDir}: model directory not found.");
        var names = SpecialTokenNames.Read(modelDir);
        string vocab = Path.Combine(modelDir, "vocab.json");
        string merges = Path.Combine(modelDir, "merges.txt");
        foreach (string name in new[] { "spiece.model", "tokenizer.model" })
        {
            string model = Path.Combine(modelDir, name);
            if (File.Exists(model)) return SentencePieceTextTokenizer.Load(model, names);
        }
        string json = Path.Combine(modelDir, "tokenizer.json");
        if (File.Exists(json)) return TokenizerJson.Load(json, names);
        if (File.Exists(vocab) && File.Exists(merges)) return ByteLevelBpeTokenizer.FromVocabAndMerges(vocab, merges, names);
        if (File.Exists(vocab)) return SymbolTokenizer.Load(vocab, names);
        throw new DataException(
            $"{modelDir}: no tokenizer found. Looked for spiece.model or tokenizer.model (SentencePiece), tokenizer.json (byte-level BPE or Unigram), " +
            "vocab.json + merges.txt (GPT-2 BPE) and vocab.json alone (symbol vocabulary); copy the tokenizer files from the checkpoint, or train on pre-tokenized JSONL (input_ids/target_ids).");
    }
}
