using SoftPrompt.Models;
using SoftPrompt.Text;

namespace SoftPrompt.Tests.Text;

/// <summary>
/// Whether inputs start with BOS comes from what the checkpoint's tokenizer declares (tokenizer_config.json's
/// add_bos_token, then tokenizer.json's post_processor), and from the family only when neither says anything.
/// </summary>
public sealed class BosConventionTests : TextTestDirectory
{
    // Llama 3's post_processor (a Sequence of ByteLevel and a TemplateProcessing that puts <|begin_of_text|> first).
    private const string Llama3TokenizerJson = """
        {"post_processor": {"type": "Sequence", "processors": [
          {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
          {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
           "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}}]}}
        """;
    // Qwen2's: ByteLevel only, so no BOS.
    private const string Qwen2TokenizerJson = """{"post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}}""";
    // T5's: the input, then </s>; nothing before it.
    private const string T5TokenizerJson = """
        {"post_processor": {"type": "TemplateProcessing",
          "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}], "pair": [], "special_tokens": {}}}
        """;

    private bool StartsWithBos(ModelFamily family) => BosConvention.StartsWithBos(Dir, family);

    [Test]
    public void TokenizerConfigsAddBosTokenDecidesAndOverridesTokenizerJson()
    {
        Write("tokenizer.json", Llama3TokenizerJson);
        Write("tokenizer_config.json", """{"add_bos_token": false, "bos_token": null}""");
        Assert.That(StartsWithBos(ModelFamily.Llama), Is.False, "Qwen2.5's declaration");
        Write("tokenizer.json", Qwen2TokenizerJson);
        Write("tokenizer_config.json", """{"add_bos_token": true, "bos_token": "<s>"}""");
        Assert.That(StartsWithBos(ModelFamily.Gpt2), Is.True, "Llama 2's declaration, whatever the family");
    }

    [Test]
    public void WithoutAddBosTokenTheTokenizerJsonPostProcessorDecides()
    {
        Write("tokenizer_config.json", """{"bos_token": "<|begin_of_text|>"}""");
        Write("tokenizer.json", Llama3TokenizerJson);
        Assert.That(StartsWithBos(ModelFamily.Llama), Is.True, "Llama 3: a template that starts with a special token");
        Write("tokenizer.json", Qwen2TokenizerJson);
        Assert.That(StartsWithBos(ModelFamily.Llama), Is.False, "Qwen2: ByteLevel adds nothing, though it opens as a Llama-style model");
        Write("tokenizer.json", T5TokenizerJson);
        Assert.That(StartsWithBos(ModelFamily.T5), Is.False, "T5: the template's special token comes after the input");
        Write("tokenizer.json", """{"post_processor": null}""");
        Assert.That(StartsWithBos(ModelFamily.Llama), Is.False, "no post-processor: nothing added");
    }

    [Test]
    public void WithNeitherFileTheFamilyDecides()
    {
        Write("tokenizer_config.json", """{"bos_token": "<s>"}""");  // names BOS, does not say whether to add it
        Assert.That(StartsWithBos(ModelFamily.Llama), Is.True, "a Llama tokenizer.model alone: LlamaTokenizer adds BOS");
        Assert.That(StartsWithBos(ModelFamily.Gpt2), Is.False);
        Assert.That(StartsWithBos(ModelFamily.T5), Is.False);
    }

    [Test]
    public void TheOptionsOfARunFollowTheDeclaration()
    {
        Write("tokenizer.json", Qwen2TokenizerJson);
        var options = TokenizeOptions.For(ModelFamily.Llama, Dir, maxTokens: 32);
        Assert.That((options.AddBos, options.InputEos), Is.EqualTo((false, false)));
    }

    [Test]
    public void AnAddBosTokenThatIsNotABooleanIsRefused()
    {
        Write("tokenizer_config.json", """{"add_bos_token": "yes"}""");
        var e = Assert.Throws<DataException>(() => StartsWithBos(ModelFamily.Llama));
        Assert.That(e!.Message, Does.Contain("tokenizer_config.json").And.Contain("add_bos_token"));
    }
}
