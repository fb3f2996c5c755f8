using SoftPrompt.Checkpoints;
using SoftPrompt.Models.T5;
using BenchmarkDotNet.Attributes;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Benchmarks;

/// <summary>
/// The attention kernels (kernels/attention.cu in fp32; with Bf16Storage, q, k, v and out bf16 in memory: attention_tc.cu's
/// tensor-core kernels at hs 64 / 128, attention.cu's bf16 SIMT kernels at hs 16), forward and backward separately, at model shapes: GPT-2's fused-qkv
/// causal attention (<see cref="FusedQkvAttention"/>: gpt2-small's hs 64, an hs-128 and an hs-16 shape) and T5-base's
/// encoder self-attention (bias + key lengths), decoder self-attention (causal + bias) and cross-attention (key lengths,
/// Tq ≠ Tk), H = 12, hs = 64. Useful FLOPs of a forward: 2·B·H·T·(T+1)·hs causal (q·kᵀ and P·v over the visible
/// half), 4·B·H·Tq·Tk·hs otherwise; the backward does about 2.5× that. On the emulator every shape shrinks to B = 1 and
/// T ≤ 64 (the figures then describe the emulator). Each invocation queues <see cref="Repeats"/> launches and waits once.
/// </summary>
[MemoryDiagnoser]
public class AttentionKernelBenchmarks
{
    private const int Repeats = 5, NumBuckets = 32;

    public enum Shape
    {
        /// <summary>GPT-2 small: B 8, T 1024, C 768, H 12 (hs 64).</summary>
        Gpt2Hs64,
        /// <summary>B 4, T 1024, C 1024, H 8 (hs 128).</summary>
        Gpt2Hs128,
        /// <summary>B 16, T 512, C 256, H 16 (hs 16).</summary>
        Gpt2Hs16,
        /// <summary>T5-base encoder: B 16, T 512, bias, key lengths.</summary>
        T5Encoder,
        /// <summary>T5-base decoder: B 16, T 128, causal, bias.</summary>
        T5Decoder,
        /// <summary>T5-base cross-attention: B 16, Tq 128, Tk 512, key lengths.</summary>
        T5Cross,
    }

    [ParamsAllValues]
    public Shape Case { get; set; }

    /// <summary>q, k, v and out bf16 in memory (an engine in bf16 precision: the tensor-core kernels at hs 64 and 128).</summary>
    [Params(false, true)]
    public bool Bf16Storage { get; set; }

    private IComputeDevice device = null!;
    private int batch, queryLength, keyLength, heads, headSize, a;
    private bool fused, causal;
    private DeviceBuffer<float> q = null!, kv = null!, output = null!, lse = null!, dout = null!, dq = null!, dk = null!, dv = null!, scratch = null!, table = null!;
    private DeviceBuffer<ushort> q16 = null!, kv16 = null!, output16 = null!;
    private DeviceBuffer<int> buckets = null!, lengths = null!;

    [GlobalSetup]
    public void Setup()
    {
        device = BenchDevices.Open();
        bool gpu = device is CudaDevice;
        (fused, causal, batch, queryLength, keyLength, heads, headSize) = Case switch
        {
            Shape.Gpt2Hs64 => (true, true, 8, 1024, 1024, 12, 64),
            Shape.Gpt2Hs128 => (true, true, 4, 1024, 1024, 8, 128),
            Shape.Gpt2Hs16 => (true, true, 16, 512, 512, 16, 16),
            Shape.T5Encoder => (false, false, 16, 512, 512, 12, 64),
            Shape.T5Decoder => (false, true, 16, 128, 128, 12, 64),
            _ => (false, false, 16, 128, 512, 12, 64),
        };
        if (!gpu) (batch, queryLength, keyLength) = (1, Math.Min(queryLength, 64), Math.Min(keyLength, 64));
        a = heads * headSize;
        long queries = (long)batch * queryLength, keys = (long)batch * keyLength;
        var random = new Random(1);
        DeviceBuffer<float> Random(long n)
        {
            var host = new float[n];
            for (long i = 0; i < n; i++) host[i] = (float)(random.NextDouble() * 2 - 1);
            var buffer = device.Allocate<float>(Math.Max(n, 1));
            buffer.CopyFrom(host);
            return buffer;
        }
        DeviceBuffer<ushort> RandomBf16(long n)
        {
            var host = new ushort[n];
            for (long i = 0; i < n; i++) host[i] = ElementConversion.SingleToBFloat16((float)(random.NextDouble() * 2 - 1));
            var buffer = device.Allocate<ushort>(Math.Max(n, 1));
            buffer.CopyFrom(host);
            return buffer;
        }
        // GPT-2: q is the fused qkv [B·T, 3C] and dq the fused dqkv; T5: q [B·Tq, A] and kv [B·Tk, 2A] (k, v at columns 0, A).
        // q16, kv16, output16: the same shapes in bf16 (Bf16Storage).
        q = Random(queries * (fused ? 3 * a : a));
        kv = Random(fused ? 0 : keys * 2 * a);
        output = Random(queries * a);
        q16 = RandomBf16(Bf16Storage ? queries * (fused ? 3 * a : a) : 0);
        kv16 = RandomBf16(Bf16Storage && !fused ? keys * 2 * a : 0);
        output16 = RandomBf16(Bf16Storage ? queries * a : 0);
        lse = Random(queries * heads);
        dout = Random(queries * a);
        dq = Random(queries * (fused ? 3 * a : a));
        dk = Random(fused ? 0 : keys * a);
        dv = Random(fused ? 0 : keys * a);
        scratch = Random(queries * heads);
        table = Random(NumBuckets * heads);
        var bucketHost = new int[queryLength + keyLength - 1];
        T5RelativeBuckets.Compute(queryLength, keyLength, Case == Shape.T5Encoder, NumBuckets, 128, bucketHost);
        buckets = device.Allocate<int>(bucketHost.Length);
        buckets.CopyFrom(bucketHost);
        var lengthHost = new int[batch];
        for (int b = 0; b < batch; b++) lengthHost[b] = keyLength - (b * 7) % Math.Max(keyLength / 2, 1);
        lengths = device.Allocate<int>(batch);
        lengths.CopyFrom(lengthHost);
        LaunchForward();  // out and lse of these inputs, for the backward
        device.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup() => device.Dispose();

    private void LaunchForward()
    {
        if (fused)
        {
            if (Bf16Storage) FusedQkvAttention.Forward(device, output16.Span, lse.Span, q16.Span, batch, queryLength, a, heads);
            else FusedQkvAttention.Forward(device, output.Span, lse.Span, q.Span, batch, queryLength, a, heads);
            return;
        }
        bool bias = Case != Shape.T5Cross, keyLengths = Case != Shape.T5Decoder;
        if (Bf16Storage)
            AttentionForward.Launch(device, output16.Span, a, lse.Span, q16.Span, a, kv16.Span, 2 * a, kv16.Span.Slice(a), 2 * a,
                bias ? table.Span : default, bias ? buckets.Span : default, keyLengths ? lengths.Span : default,
                batch, queryLength, keyLength, heads, headSize, causal, 1f);
        else
            AttentionForward.Launch(device, output.Span, a, lse.Span, q.Span, a, kv.Span, 2 * a, kv.Span.Slice(a), 2 * a,
                bias ? table.Span : default, bias ? buckets.Span : default, keyLengths ? lengths.Span : default,
                batch, queryLength, keyLength, heads, headSize, causal, 1f);
    }

    private void LaunchBackward()
    {
        if (fused)
        {
            if (Bf16Storage)
                FusedQkvAttention.Backward(device, dq.Span, dout.Span, q16.Span, output16.Span, lse.Span, scratch.Span, batch, queryLength, a, heads);
            else FusedQkvAttention.Backward(device, dq.Span, dout.Span, q.Span, output.Span, lse.Span, scratch.Span, batch, queryLength, a, heads);
            return;
        }
        bool bias = Case != Shape.T5Cross, keyLengths = Case != Shape.T5Decoder;
        if (Bf16Storage)
            AttentionBackward.Launch(device, dq.Span, a, dk.Span, a, dv.Span, a, dout.Span, a, q16.Span, a, kv16.Span, 2 * a, kv16.Span.Slice(a), 2 * a,
                output16.Span, a, lse.Span, scratch.Span, bias ? table.Span : default, bias ? buckets.Span : default, keyLengths ? lengths.Span : default,
                batch, queryLength, keyLength, heads, headSize, causal, 1f);
        else
            AttentionBackward.Launch(device, dq.Span, a, dk.Span, a, dv.Span, a, dout.Span, a, q.Span, a, kv.Span, 2 * a, kv.Span.Slice(a), 2 * a,
                output.Span, a, lse.Span, scratch.Span, bias ? table.Span : default, bias ? buckets.Span : default, keyLengths ? lengths.Span : default,
                batch, queryLength, keyLength, heads, headSize, causal, 1f);
    }

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void Forward()
    {
        for (int i = 0; i < Repeats; i++) LaunchForward();
        device.Synchronize();
    }

    [Benchmark(OperationsPerInvoke = Repeats)]
    public void Backward()
    {
        for (int i = 0; i < Repeats; i++) LaunchBackward();
        device.Synchronize();
    }
}
