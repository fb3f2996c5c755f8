using SoftPrompt.Checkpoints;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;
using SoftPrompt.Text;
using SoftPrompt.Tuning;

namespace SoftPrompt.Fuzz;

/// <summary>
/// One fuzz target per input format: the bytes are written where the loader expects its file and the loader's public
/// entry point runs on them, as the CLI would. Compiled into both the fuzzer (SoftPrompt.Fuzz, driven by afl++ through
/// SharpFuzz) and SoftPrompt.Tests (which replays tests/SoftPrompt.Fuzz/corpus through the same code).
/// A "crash" is any exception <see cref="IsCleanError"/> refuses (including <see cref="FuzzInvariantException"/>: a
/// result that breaks the loader's own contract, e.g. an empty prompt): the loaders' contract for bad input is a one-line
/// <see cref="CheckpointException"/> / <see cref="DataException"/> (or the plain exception types CliErrors prints as one
/// line), never a framework exception from inside the parser.
/// Targets of two files split the input at its first NUL byte (the files are text, so it cannot occur in them).
/// </summary>
internal static class FuzzTargets
{
    public static readonly string[] Names =
    [
        "safetensors", "torch-zip", "pickle", "config-gpt2", "config-llama", "config-t5",
        "tokenizer-json", "vocab-merges", "sentencepiece", "jsonl", "pretokenized-jsonl", "csv", "prompt", "peft",
    ];

    /// <summary>Text every tokenizer target encodes and decodes after loading, to reach the tables it built.</summary>
    private const string Sample = "Hello world, 123 héllo\u00a0 \U0001F600 ab\n\tc";

    /// <summary>
    /// The loaders' documented errors: the library's own, and the exact framework types CliErrors turns into one line.
    /// Subclasses that only framework code throws (ArgumentOutOfRange/ArgumentNull, ObjectDisposed, EndOfStream …) are
    /// bugs: a loader let an index, length or null reach the runtime unchecked.
    /// </summary>
    /// The message must also name the input's file (every input is written under <paramref name="workDir"/>): a bare
    /// "Cannot transcode invalid UTF-8 JSON text" from System.Text.Json is an InvalidOperationException CliErrors would
    /// print, but it does not say which file is wrong.
    public static bool IsCleanError(Exception e, string workDir) =>
        (e is CheckpointException or DataException
         || e.GetType() == typeof(ArgumentException) || e.GetType() == typeof(InvalidOperationException)
         || e.GetType() == typeof(NotSupportedException) || e.GetType() == typeof(IOException)
         || e.GetType() == typeof(InvalidDataException))
        && e.Message.Contains(workDir, StringComparison.Ordinal) && !e.Message.Contains('\n');

    /// <summary>Runs <paramref name="target"/> on <paramref name="data"/>, writing its files under <paramref name="workDir"/> (emptied first).</summary>
    public static void Run(string target, ReadOnlySpan<byte> data, string workDir)
    {
        if (Directory.Exists(workDir)) Directory.Delete(workDir, recursive: true);
        Directory.CreateDirectory(workDir);
        string File1(string name, ReadOnlySpan<byte> bytes)
        {
            string path = Path.Combine(workDir, name);
            File.WriteAllBytes(path, bytes.ToArray());
            return path;
        }
        switch (target)
        {
            case "safetensors":
            {
                using var file = SafeTensorFile.Open(File1("model.safetensors", data));
                ReadAll(file);
                break;
            }
            case "torch-zip":
            {
                using var file = TorchZipFile.Open(File1("pytorch_model.bin", data));
                ReadAll(file);
                break;
            }
            case "pickle":
                StateDictUnpickler.Read(Path.Combine(workDir, "pytorch_model.bin"), data.ToArray());
                break;
            case "config-gpt2": Gpt2Config.Load(File1("config.json", data)); break;
            case "config-llama": LlamaConfig.Load(File1("config.json", data)); break;
            case "config-t5": T5Config.Load(File1("config.json", data)); break;
            case "tokenizer-json":
                Exercise(TokenizerJson.Load(File1("tokenizer.json", data), SpecialTokenNames.None));
                break;
            case "vocab-merges":
            {
                var (vocab, merges) = Split(data);
                Exercise(ByteLevelBpeTokenizer.FromVocabAndMerges(File1("vocab.json", vocab), File1("merges.txt", merges), SpecialTokenNames.None));
                break;
            }
            case "sentencepiece":
                Exercise(SentencePieceTextTokenizer.Load(File1("spiece.model", data), SpecialTokenNames.None));
                break;
            case "jsonl":
            {
                string path = File1("data.jsonl", data);
                TextTable.Read(path, skipBadRows: true);
                TextTable.Read(path, skipBadRows: false);
                break;
            }
            case "pretokenized-jsonl":
            {
                string path = File1("data.jsonl", data);
                if (PretokenizedJsonl.IsPretokenized(path))
                {
                    PretokenizedJsonl.Load(path, vocabSize: 1000, maxTokens: 512, skipBadRows: true, out _, out _);
                    PretokenizedJsonl.Load(path, vocabSize: 1000, maxTokens: 512);
                }
                break;
            }
            case "csv":
                TextTable.Read(File1("data.csv", data), skipBadRows: true);
                TextTable.Read(File1("data.tsv", data), skipBadRows: false);
                break;
            case "prompt": CheckPrompt(PromptFile.Load(File1("prompt.safetensors", data))); break;
            case "peft":
            {
                var (config, weights) = Split(data);
                File1("adapter_config.json", config);
                File1("adapter_model.safetensors", weights);
                CheckPrompt(PeftAdapter.Import(workDir));
                break;
            }
            default: throw new ArgumentException($"unknown fuzz target '{target}' (targets: {string.Join(", ", Names)})");
        }
    }

    /// <summary>Runs the target and swallows the clean errors; anything else propagates (a crash).</summary>
    public static void RunExpectingCleanErrors(string target, ReadOnlySpan<byte> data, string workDir)
    {
        try
        {
            Run(target, data, workDir);
        }
        catch (Exception e) when (IsCleanError(e, workDir))
        {
        }
    }

    private static (byte[] First, byte[] Second) Split(ReadOnlySpan<byte> data)
    {
        int nul = data.IndexOf((byte)0);
        return nul < 0 ? (data.ToArray(), []) : (data[..nul].ToArray(), data[(nul + 1)..].ToArray());
    }

    /// <summary>What a loaded prompt promises its users; a file that breaks it should have been refused.</summary>
    private static void CheckPrompt(PromptFile prompt)
    {
        if (prompt.Length < 1 || prompt.Width < 1 || prompt.Values.Length != (long)prompt.Length * prompt.Width)
            throw new FuzzInvariantException($"loaded a prompt of {prompt.Length} × {prompt.Width} with {prompt.Values.Length} values");
    }

    private static void ReadAll(TensorFile file)
    {
        foreach (var info in file.Tensors)
        {
            if (info.ByteLength <= 1 << 20) file.GetBytes(info.Name);
            if (info.DType.IsConvertibleFloat && info.ElementCount <= 1 << 18) file.Read<float>(info.Name);
            else if (info.DType is SafeTensorDType.I64 or SafeTensorDType.I32 && info.ElementCount <= 1 << 18)
                file.ReadInt64(info.Name, new long[info.ElementCount]);
        }
    }

    private static void Exercise(ITextTokenizer tokenizer)
    {
        var ids = tokenizer.Encode(Sample);
        tokenizer.Decode(ids);
        foreach (int id in ids) tokenizer.TokenText(id);
    }
}

/// <summary>A loader accepted an input but returned something that breaks its own contract (counted as a crash).</summary>
internal sealed class FuzzInvariantException(string message) : Exception(message);
