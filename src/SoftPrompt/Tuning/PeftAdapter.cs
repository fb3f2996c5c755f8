using System.Text.Encodings.Web;
using System.Text.Json;
using SoftPrompt.Checkpoints;

namespace SoftPrompt.Tuning;

/// <summary>What a PEFT adapter_config.json needs to know about the model besides the prompt itself.</summary>
/// <param name="BaseModel">base_model_name_or_path: a Hub id ("gpt2") or the checkpoint directory.</param>
/// <param name="Layers">num_layers (an encoder-decoder model's encoder layers, as PEFT reads them from the model config).</param>
/// <param name="TaskType">PEFT's task_type: <see cref="PeftAdapter.CausalLm"/> for decoder-only models, <see cref="PeftAdapter.Seq2SeqLm"/> for T5 (<see cref="Models.ModelFamily.PeftTaskType"/>).</param>
public sealed record PeftExportSettings(string BaseModel, int Layers, int Heads, string TaskType = PeftAdapter.CausalLm, InitSpec? Init = null);

/// <summary>
/// Hugging Face PEFT prompt-tuning adapters: a directory with adapter_model.safetensors (tensor "prompt_embeddings"
/// [num_virtual_tokens × num_transformer_submodules, token_dim], metadata format=pt) and adapter_config.json (a
/// PromptTuningConfig: peft_type PROMPT_TUNING, written with sorted keys and two-space indent as PEFT writes it).
/// PeftModel.from_pretrained(base, dir) loads what <see cref="Export"/> writes; <see cref="Import"/> reads what PEFT saves.
/// <para>
/// Encoder-decoder models (T5): PEFT's PeftModelForSeq2SeqLM keeps num_virtual_tokens × num_transformer_submodules
/// rows and, with its default of 2 submodules for SEQ_2_SEQ_LM, forward() prepends rows [0, P) to the encoder
/// input and rows [P, 2P) to the decoder input, while generate() uses only the encoder rows. SoftPrompt's prompt
/// is Lester et al.'s, on the encoder only, so <see cref="Export"/> writes num_transformer_submodules = 1 (PEFT keeps
/// a value the config gives): PEFT then prepends exactly our P rows to the encoder in forward() and generate()
/// alike. A second copy of the rows in the decoder half would instead change every teacher-forced logit.
/// <see cref="Import"/> reads both layouts and keeps the encoder rows of a two-submodule adapter.
/// </para>
/// </summary>
public static class PeftAdapter
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    public const string PeftType = "PROMPT_TUNING";
    public const string CausalLm = "CAUSAL_LM";
    public const string Seq2SeqLm = "SEQ_2_SEQ_LM";
    /// <summary>Metadata an import adds: the adapter's task_type, and how many decoder-prompt rows it dropped.</summary>
    public const string TaskTypeKey = "peft_task_type";
    public const string DroppedDecoderRowsKey = "peft_dropped_decoder_rows";

    // SoftPrompt's own metadata keys, carried in the safetensors header so an import restores them.
    private static readonly string[] CarriedKeys = [PromptFile.FingerprintKey, PromptFile.FamilyKey, "model_path", "init", "step"];

    public static void Export(PromptFile prompt, string directory, PeftExportSettings settings)
    {
        try { Directory.CreateDirectory(directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{directory}: cannot create the adapter directory ({e.Message}).", e);
        }
        var writer = new SafeTensorWriter();
        writer.Metadata["format"] = "pt";
        foreach (string key in CarriedKeys)
            if (prompt.Metadata.TryGetValue(key, out var value)) writer.Metadata["softprompt_" + key] = value;
        FinitePrompt.Require(prompt.Values, prompt.Width, Path.Combine(directory, WeightsFile), PromptFile.TensorName, writing: true);
        writer.Add(PromptFile.TensorName, prompt.Values, [prompt.Length, prompt.Width]);
        writer.Save(Path.Combine(directory, WeightsFile));
        AtomicFile.Write(Path.Combine(directory, ConfigFile), stream => WriteConfig(stream, prompt, settings));
    }

    private static void WriteConfig(Stream stream, PromptFile prompt, PeftExportSettings s)
    {
        var init = s.Init ?? InitSpec.RandomUniform;
        bool text = init.Kind == InitKind.Text;
        // Every field of PromptTuningConfig (with those of PromptLearningConfig and PeftConfig), sorted by name.
        var fields = new SortedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = s.BaseModel,
            ["inference_mode"] = true,
            ["num_attention_heads"] = s.Heads,
            ["num_layers"] = s.Layers,
            // 1 even for SEQ_2_SEQ_LM: the prompt reaches the encoder only (see the class comment).
            ["num_transformer_submodules"] = 1,
            ["num_virtual_tokens"] = prompt.Length,
            ["peft_type"] = PeftType,
            ["prompt_tuning_init"] = init.PeftName,
            ["prompt_tuning_init_text"] = text ? init.Argument : null,
            ["revision"] = null,
            ["task_type"] = s.TaskType,
            ["token_dim"] = prompt.Width,
            ["tokenizer_kwargs"] = null,
            // PEFT refuses a TEXT config without a tokenizer, even in inference mode where it does not use one.
            ["tokenizer_name_or_path"] = text ? s.BaseModel : null,
        };
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        json.WriteStartObject();
        foreach (var (key, value) in fields)
        {
            switch (value)
            {
                case null: json.WriteNull(key); break;
                case bool b: json.WriteBoolean(key, b); break;
                case int i: json.WriteNumber(key, i); break;
                default: json.WriteString(key, (string)value); break;
            }
        }
        json.WriteEndObject();
    }

    /// <summary>Reads a PEFT prompt-tuning adapter directory as a prompt (metadata: what the adapter says about its origin).</summary>
    public static PromptFile Import(string directory)
    {
        if (!Directory.Exists(directory)) throw new CheckpointException($"{directory}: adapter directory not found.");
        string configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new CheckpointException($"{directory}: no {ConfigFile}; give `PeftAdapter` a directory saved by PeftModel.save_pretrained.");
        JsonElement config;
        try
        {
            using var document = StrictJson.Parse(File.ReadAllBytes(configPath));
            config = document.RootElement.Clone();
        }
        catch (JsonException e) { throw new CheckpointException($"{configPath}: not valid JSON ({e.Message}).", e); }
        if (config.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{configPath}: expected a JSON object.");

        string? type = String(config, "peft_type");
        if (!string.Equals(type, PeftType, StringComparison.OrdinalIgnoreCase))
            throw new CheckpointException($"{configPath}: peft_type is \"{type}\"; only {PeftType} adapters hold a soft prompt SoftPrompt can use.");
        string? taskType = String(config, "task_type");
        bool seq2seq = string.Equals(taskType, Seq2SeqLm, StringComparison.OrdinalIgnoreCase);
        // PEFT fills a missing num_transformer_submodules from the task: 2 for SEQ_2_SEQ_LM, else 1.
        int submodules = Int(config, "num_transformer_submodules", configPath) ?? (seq2seq ? 2 : 1);
        if (submodules is not (1 or 2) || (submodules == 2 && !seq2seq))
            throw new CheckpointException(
                $"{configPath}: num_transformer_submodules is {submodules} with task_type {taskType ?? "null"}; SoftPrompt reads one prompt (CAUSAL_LM) " +
                $"or an encoder-decoder adapter ({Seq2SeqLm} with 1 or 2 submodules, whose first num_virtual_tokens rows reach the encoder).");
        int? virtualTokens = Int(config, "num_virtual_tokens", configPath);
        int? tokenDim = Int(config, "token_dim", configPath);

        string weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weightsPath))
            throw new CheckpointException(File.Exists(Path.Combine(directory, "adapter_model.bin"))
                ? $"{directory}: the adapter is a PyTorch pickle (adapter_model.bin); re-save it as safetensors in Python: model.save_pretrained(dir, safe_serialization=True)."
                : $"{directory}: no {WeightsFile}.");
        using var file = SafeTensorFile.Open(weightsPath);
        if (!file.TryGetInfo(PromptFile.TensorName, out var info))
            throw new CheckpointException($"{weightsPath}: no tensor \"{PromptFile.TensorName}\" (has: {string.Join(", ", file.TensorNames)}).");
        if (info.Shape.Length != 2) throw new CheckpointException($"{weightsPath}: \"{PromptFile.TensorName}\" has shape {info.ShapeText}, expected [num_virtual_tokens, token_dim].");
        PromptFile.RequireNonEmpty(info, weightsPath, "[num_virtual_tokens, token_dim]");
        int rows = (int)info.Shape[0], width = (int)info.Shape[1];
        if (rows % submodules != 0 || (virtualTokens is int v && v * submodules != rows))
            throw new CheckpointException(
                $"{weightsPath}: \"{PromptFile.TensorName}\" has {rows} rows but {ConfigFile} says num_virtual_tokens {virtualTokens?.ToString() ?? "(absent)"} × num_transformer_submodules {submodules}.");
        int length = rows / submodules;
        if (tokenDim is int d && d != width)
            throw new CheckpointException($"{weightsPath}: \"{PromptFile.TensorName}\" is {width} wide but {ConfigFile} says token_dim {d}.");

        var metadata = new Dictionary<string, string>();
        foreach (string key in CarriedKeys)
            if (file.Metadata.TryGetValue("softprompt_" + key, out var value)) metadata[key] = value;
        if (String(config, "base_model_name_or_path") is string baseModel) metadata["peft_base_model"] = baseModel;
        if (taskType is not null) metadata[TaskTypeKey] = taskType.ToUpperInvariant();
        if (submodules == 2) metadata[DroppedDecoderRowsKey] = length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!metadata.ContainsKey("init"))
        {
            metadata["init"] = String(config, "prompt_tuning_init")?.ToUpperInvariant() switch
            {
                "TEXT" => InitSpec.TextPrefix + String(config, "prompt_tuning_init_text"),
                "SAMPLE_VOCAB" => "sampled-vocab",
                _ => "random-uniform",
            };
        }
        metadata["imported_from"] = Path.GetFullPath(directory);
        // Rows [0, P) are the encoder prompt; a second submodule's rows [P, 2P) (PEFT's decoder prompt) are dropped.
        var values = file.Read<float>(PromptFile.TensorName);
        if (submodules != 1) values = values[..(length * width)];
        FinitePrompt.Require(values, width, Path.Combine(directory, WeightsFile), PromptFile.TensorName, writing: false);
        return new PromptFile(values, length, width, metadata);
    }

    private static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static int? Int(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number)) return number;
        throw new CheckpointException($"{path}: \"{name}\" is {value.GetRawText()}, expected an integer.");
    }
}
