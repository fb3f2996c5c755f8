using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models.Llama;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// Llama's bf16 reverse pass makes its GEMM operands in the kernels that produce them: each RMSNorm backward rounds the
/// updated residual gradient for the down or o_proj GEMM that reads it next, and the shared-row reductions write q's, k's
/// and v's gradients in bf16 — no convert_to_bf16 pass in a step, with or without recomputation. hs64 reads the kv groups
/// in place (narrow k/v gradients from the kernel); tiny-attention-bias (head size 8) repeats and sums them around it.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class LlamaBf16BackwardOperandTests(DeviceKind kind)
{
    [TestCase("bf16/llama-hs64", Recomputation.Off)]
    [TestCase("bf16/llama-hs64", Recomputation.PerLayer)]
    [TestCase("llama/tiny-attention-bias", Recomputation.Off)]
    [TestCase("llama/tiny-attention-bias", Recomputation.PerLayer)]
    public void AStepConvertsNoOperandToBf16(string model, Recomputation recomputation)
    {
        string dir = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", model);
        var fixture = Gpt2Fixture.LoadFrom(dir, "case-a");
        var device = TestDevices.Open(kind);
        var weights = LlamaCheckpoint.Load<float>(dir);
        int layers = weights.Config.Layers;
        using var engine = new CudaLlamaEngine(device, weights, ownsDevice: true, bf16: true) { Recomputation = recomputation };
        engine.LoadPrompts(fixture.Prompts, fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();
        engine.ForwardBackward(batch);  // the plan is allocated outside the profiled step
        var profiler = device.StartProfiling();
        try
        {
            engine.ForwardBackward(batch);
            var calls = profiler.Read().Ops.ToDictionary(o => o.Label, o => o.Calls);
            Assert.That(calls.GetValueOrDefault("convert_to_bf16"), Is.Zero, "no fp32 operand is rounded by a pass of its own");
            Assert.That(calls.GetValueOrDefault("rmsnorm_backward_bf16"), Is.EqualTo(2 * layers),
                "post_attention_layernorm of every layer, input_layernorm of every layer but the first (whose gradient goes to the embeddings), and the final norm");
            Assert.That(calls.GetValueOrDefault("rmsnorm_backward"), Is.EqualTo(1), "layer 0's input_layernorm");
            Assert.That(calls.GetValueOrDefault("gather_sum_rows_bf16"), Is.EqualTo(3 * layers), "q's, k's and v's gradients, once each per layer");
        }
        finally
        {
            device.StopProfiling();
        }
    }
}
