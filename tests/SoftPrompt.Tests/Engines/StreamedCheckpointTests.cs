using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using SoftPrompt.Checkpoints;
using SoftPrompt.Engines;
using SoftPrompt.Models;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Models.Llama;
using SoftPrompt.Models.T5;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// A device engine opened from a checkpoint (<see cref="ModelFamily.Open"/>) streams each tensor from the mapping into its
/// device tensor instead of building the whole model as fp32 host arrays first: the results must be bit-identical to
/// uploading the host weights (<see cref="EngineFactory.Create(Gpt2Weights{float}, string, string, EngineOptions?)"/> and
/// kin), and the host memory a load allocates must be about one tensor's, not the model's.
/// </summary>
public sealed class StreamedCheckpointTests
{
    private const string Device = "cuda-emulated";

    private static string Fixture(string path) => Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", path);

    /// <summary>Tied and untied heads, prefixed and bare names, Qwen2 and attention biases, T5 v1.0/v1.1/mT5, and PyTorch .bin files with BF16/F16/F64 tensors.</summary>
    private static readonly string[] Fixtures =
    [
        "gpt2/tiny", "gpt2/tiny-prefixed", "gpt2/tiny-layer-scaled", "llama/tiny", "llama/tiny-qwen2", "llama/tiny-attention-bias",
        "llama/tiny-tied-llama3", "t5/v1_0", "t5/v1_1", "t5/mt5", "torch/t5-bin", "torch/t5-sharded",
    ];

    [Test]
    public void StreamedFixturesMatchTheHostWeightsPath([ValueSource(nameof(Fixtures))] string fixture, [Values(Precision.Fp32, Precision.Bf16)] Precision precision)
    {
        TestDevices.OpenEmulated().Dispose(); // ignored without the emulator
        AssertSameAsHostWeights(Fixture(fixture), new EngineOptions(precision));
    }

    /// <summary>Every tensor stored F16 or BF16: converted to fp32 on the way (or to bf16, BF16 bits copied as they are) exactly as the host path converts.</summary>
    [TestCase(SafeTensorDType.BF16)]
    [TestCase(SafeTensorDType.F16)]
    public void HalfPrecisionCheckpointsStreamAsTheHostPathUploads(SafeTensorDType dtype)
    {
        using var device = TestDevices.OpenEmulated();
        using var directory = new TempDirectory();
        StoreAs(Fixture("llama/tiny"), directory.Path, dtype);
        AssertSameAsHostWeights(directory.Path, new EngineOptions(Precision.Fp32));
        AssertSameAsHostWeights(directory.Path, new EngineOptions(Precision.Bf16));

        var (config, checkpoint) = LlamaCheckpoint.Open(directory.Path);
        using var _ = checkpoint;
        using var weights = LlamaDeviceWeights.Upload(device, config, new CheckpointWeightSource<LlamaWeights<float>>(checkpoint), bf16: true);
        var query = weights.Layers[1].Query;
        Assert.That(query.IsBf16);
        var onDevice = new ushort[query.Length];
        device.CopyToHost(query.Bf16, onDevice);
        const string name = "model.layers.1.self_attn.q_proj.weight";
        var stored = checkpoint.Directory.FileOf(name).GetBytes(name);
        ushort[] expected = dtype == SafeTensorDType.BF16
            ? MemoryMarshal.Cast<byte, ushort>(stored).ToArray()
            : [.. MemoryMarshal.Cast<byte, Half>(stored).ToArray().Select(h => ElementConversion.SingleToBFloat16((float)h))];
        Assert.That(onDevice, Is.EqualTo(expected), "BF16 copied bit for bit; F16 widened, then rounded to nearest even");
    }

    /// <summary>A tensor of the wrong shape, or a missing untied head: the device load refuses it with the CPU load's message (naming the file and tensor).</summary>
    [TestCase("llama/tiny", "model.layers.1.mlp.up_proj.weight")]
    [TestCase("llama/tiny", LlamaCheckpoint.LanguageModelHead)]
    [TestCase("gpt2/tiny", "h.1.attn.c_attn.weight")]
    [TestCase("t5/v1_1", "decoder.block.0.layer.1.EncDecAttention.k.weight")]
    public void BrokenCheckpointsFailAsOnTheCpu(string fixture, string broken)
    {
        TestDevices.OpenEmulated().Dispose();
        using var directory = new TempDirectory();
        File.Copy(Path.Combine(Fixture(fixture), "config.json"), Path.Combine(directory.Path, "config.json"));
        using (var file = SafeTensorFile.Open(Path.Combine(Fixture(fixture), CheckpointDirectory.SingleFileName)))
        {
            var writer = new SafeTensorWriter();
            foreach (var tensor in file.Tensors)
            {
                var values = file.Read<float>(tensor.Name);
                if (tensor.Name != broken) writer.Add(tensor.Name, values, tensor.Shape.AsSpan());
                else if (broken != LlamaCheckpoint.LanguageModelHead) writer.Add(tensor.Name, values.AsSpan(1), [values.Length - 1]);
            }
            writer.Save(Path.Combine(directory.Path, CheckpointDirectory.SingleFileName));
        }
        var family = ModelFamily.Detect(directory.Path);
        string cpu = Assert.Throws<CheckpointException>(() => family.Open(directory.Path, "cpu").Dispose())!.Message;
        string device = Assert.Throws<CheckpointException>(() => family.Open(directory.Path, Device).Dispose())!.Message;
        Assert.That(device, Is.EqualTo(cpu));
        Assert.That(device, Does.Contain(broken));
        TestContext.Out.WriteLine(device);
    }

    /// <summary>
    /// A ~250 MB Llama-shaped checkpoint (d 1024, 4 layers, ff 2816, vocab 8192, untied) opened on the emulator: the managed
    /// host memory the load allocates is the embedding table the loaded model keeps (32 MiB) plus little, where the host
    /// weights path allocates the whole model as fp32. (The emulator's device memory is native, outside this count.)
    /// </summary>
    [Test, Category("Slow")]
    public void OpeningOnADeviceAllocatesAboutOneTensorNotTheModel()
    {
        TestDevices.OpenEmulated().Dispose();
        using var directory = new TempDirectory();
        var config = WriteRandomLlama(directory.Path, embedding: 1024, heads: 8, keyValueHeads: 4, intermediate: 2816, layers: 4, vocab: 8192);
        long modelBytes = config.ParameterCount * sizeof(float), embeddingBytes = (long)config.VocabSize * config.Embedding * sizeof(float);

        long streamed = AllocatedWhile(() => ModelFamily.Llama.Open(directory.Path, Device));
        long hostWeights = AllocatedWhile(() => EngineFactory.Create(LlamaCheckpoint.Load<float>(directory.Path), Device, directory.Path));
        TestContext.Out.WriteLine($"model {modelBytes / 1e6:F0} MB fp32; managed bytes allocated while opening: streamed {streamed / 1e6:F1} MB, " +
            $"host weights {hostWeights / 1e6:F1} MB (embedding table {embeddingBytes / 1e6:F1} MB)");
        Assert.That(hostWeights, Is.GreaterThan(modelBytes), "the host weights path holds the whole model");
        Assert.That(streamed, Is.LessThan(embeddingBytes + modelBytes / 10), "streamed: the embedding table and small change, nothing like the model");
    }

    private static long AllocatedWhile(Func<LoadedModel> open)
    {
        GC.Collect();
        long before = GC.GetTotalAllocatedBytes(precise: true);
        using var model = open();
        return GC.GetTotalAllocatedBytes(precise: true) - before;
    }

    private static void AssertSameAsHostWeights(string directory, EngineOptions options)
    {
        var family = ModelFamily.Detect(directory);
        using var streamed = family.Open(directory, Device, options);
        using var host = family.Name switch
        {
            "gpt2" => EngineFactory.Create(Gpt2Checkpoint.Load<float>(directory), Device, directory, options),
            "llama" => EngineFactory.Create(LlamaCheckpoint.Load<float>(directory), Device, directory, options),
            _ => EngineFactory.Create(T5Checkpoint.Load<float>(directory), Device, directory, options),
        };
        Assert.That(streamed.Fingerprint, Is.EqualTo(host.Fingerprint));
        Assert.That(streamed.TokenEmbedding, Is.EqualTo(host.TokenEmbedding));
        var (streamedLoss, streamedGradient, streamedLogits) = Run(streamed.Engine, streamed.Config);
        var (hostLoss, hostGradient, hostLogits) = Run(host.Engine, host.Config);
        Assert.That(BitConverter.SingleToInt32Bits(streamedLoss), Is.EqualTo(BitConverter.SingleToInt32Bits(hostLoss)), "loss");
        Assert.That(Bits(streamedGradient), Is.EqualTo(Bits(hostGradient)), "prompt gradient");
        Assert.That(Bits(streamedLogits), Is.EqualTo(Bits(hostLogits)), "next-token logits (T5: row log-likelihoods)");
    }

    private static (float Loss, float[] Gradient, float[] Logits) Run(IPromptEngine engine, IModelConfig config)
    {
        const int prompts = 2, length = 3;
        engine.LoadPrompts(TestModels.RandomPrompts<float>(prompts * length * config.Embedding, seed: 5), prompts, length);
        var batch = TestModels.MixedBatch(length, prompts, config.VocabSize);
        float loss = engine.ForwardBackward(batch);
        var gradient = new float[prompts * length * config.Embedding];
        engine.ReadPromptGradient(gradient);
        // The T5 engine decodes only through a session, so its logits are compared through each row's log-likelihood.
        var logits = new float[config.Family.IsEncoderDecoder ? batch.Rows : batch.Rows * config.VocabSize];
        if (config.Family.IsEncoderDecoder) engine.ScoreRows(batch, logits);
        else engine.NextTokenLogits(batch, logits);
        return (loss, gradient, logits);
    }

    private static int[] Bits(float[] values) => [.. values.Select(BitConverter.SingleToInt32Bits)];

    /// <summary>A copy of a checkpoint directory with every tensor stored as <paramref name="dtype"/>.</summary>
    private static void StoreAs(string source, string destination, SafeTensorDType dtype)
    {
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(destination, "config.json"));
        using var file = SafeTensorFile.Open(Path.Combine(source, CheckpointDirectory.SingleFileName));
        var writer = new SafeTensorWriter();
        foreach (var tensor in file.Tensors) writer.Add(tensor.Name, file.Read<float>(tensor.Name), tensor.Shape.AsSpan(), dtype);
        writer.Save(Path.Combine(destination, CheckpointDirectory.SingleFileName));
    }

    /// <summary>A Llama checkpoint of the given shape with random F32 weights, written tensor by tensor (config.json from the tiny fixture's).</summary>
    private static LlamaConfig WriteRandomLlama(string directory, int embedding, int heads, int keyValueHeads, int intermediate, int layers, int vocab)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture("llama/tiny"), "config.json")))!;
        json["hidden_size"] = embedding;
        json["num_attention_heads"] = heads;
        json["num_key_value_heads"] = keyValueHeads;
        json["intermediate_size"] = intermediate;
        json["num_hidden_layers"] = layers;
        json["vocab_size"] = vocab;
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString());
        var config = LlamaConfig.Load(Path.Combine(directory, "config.json"));

        var random = new Random(3);
        var writer = new SafeTensorWriter();
        void Add(string name, params long[] shape)
        {
            var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < values.Length; i++) values[i] = (random.NextSingle() - 0.5f) * 0.05f;
            writer.Add(name, values, shape);
        }
        long d = config.Embedding, a = config.AttentionSize, kv = config.KeyValueSize, ff = config.Intermediate;
        Add("model.embed_tokens.weight", vocab, d);
        Add(LlamaCheckpoint.LanguageModelHead, vocab, d);
        Add("model.norm.weight", d);
        for (int l = 0; l < layers; l++)
        {
            string at = $"model.layers.{l}.";
            Add(at + "input_layernorm.weight", d);
            Add(at + "post_attention_layernorm.weight", d);
            Add(at + "self_attn.q_proj.weight", a, d);
            Add(at + "self_attn.k_proj.weight", kv, d);
            Add(at + "self_attn.v_proj.weight", kv, d);
            Add(at + "self_attn.o_proj.weight", d, a);
            Add(at + "mlp.gate_proj.weight", ff, d);
            Add(at + "mlp.up_proj.weight", ff, d);
            Add(at + "mlp.down_proj.weight", d, ff);
        }
        writer.Save(Path.Combine(directory, CheckpointDirectory.SingleFileName));
        return config;
    }

    private sealed class TempDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("softprompt-streamed-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
