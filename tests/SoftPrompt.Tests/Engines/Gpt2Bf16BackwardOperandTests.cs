using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;
using SoftPrompt.Engines;
using SoftPrompt.Models.Gpt2;
using SoftPrompt.Tests.Emulation;

namespace SoftPrompt.Tests.Engines;

/// <summary>
/// GPT-2's bf16 reverse pass makes its GEMM operands in the kernels that produce them (issue 12 item 8): each LayerNorm
/// backward rounds the updated residual gradient for the c_proj GEMM that reads it next, and the shared-row reduction
/// writes q|k|v's gradient in bf16 — no convert_to_bf16 pass in a step, with or without recomputation.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class Gpt2Bf16BackwardOperandTests(DeviceKind kind)
{
    [TestCase(Recomputation.Off)]
    [TestCase(Recomputation.PerLayer)]
    public void AStepConvertsNoOperandToBf16(Recomputation recomputation)
    {
        string dir = Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "gpt2", "tiny");
        var fixture = Gpt2Fixture.LoadFrom(dir, "case-a");
        var device = TestDevices.Open(kind);
        var weights = Gpt2Checkpoint.Load<float>(dir);
        int layers = weights.Config.Layers;
        using var engine = new CudaGpt2Engine(device, weights, ownsDevice: true, bf16: true) { Recomputation = recomputation };
        engine.LoadPrompts(fixture.Prompts, fixture.PromptCount, fixture.PromptLength);
        var batch = fixture.Batch();
        engine.ForwardBackward(batch);  // the plan is allocated outside the profiled step
        var profiler = device.StartProfiling();
        try
        {
            engine.ForwardBackward(batch);
            var calls = profiler.Read().Ops.ToDictionary(o => o.Label, o => o.Calls);
            Assert.That(calls.GetValueOrDefault("convert_to_bf16"), Is.Zero, "no fp32 operand is rounded by a pass of its own");
            Assert.That(calls.GetValueOrDefault("layernorm_backward_bf16"), Is.EqualTo(2 * layers),
                "ln_2 of every layer, ln_1 of every layer but the first (whose gradient goes to the embeddings), and ln_f");
            Assert.That(calls.GetValueOrDefault("layernorm_backward"), Is.EqualTo(1), "layer 0's ln_1");
            Assert.That(calls.GetValueOrDefault("gather_sum_rows_bf16"), Is.EqualTo(layers), "q|k|v's gradient, once per layer");
        }
        finally
        {
            device.StopProfiling();
        }
    }
}
