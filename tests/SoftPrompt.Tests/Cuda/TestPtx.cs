namespace SoftPrompt.Tests.Cuda;

/// <summary>
/// Hand-written PTX for the GPU tests, so launches are tested without nvcc or the project's kernels.
/// sm_52 / PTX 7.0 JIT-compiles on every GPU and driver we support.
/// </summary>
internal static class TestPtx
{
    /// <summary>
    /// add_scalar(float* x, float v, uint n): x[i] += v for i &lt; n, one thread per element.
    /// reverse_blocks(float* x): each block reverses its blockDim.x elements through dynamic shared memory.
    /// </summary>
    public const string Module = """
        .version 7.0
        .target sm_52
        .address_size 64

        .extern .shared .align 16 .b8 dyn_smem[];

        .visible .entry add_scalar(
            .param .u64 add_scalar_x,
            .param .f32 add_scalar_v,
            .param .u32 add_scalar_n
        )
        {
            .reg .pred %p<2>;
            .reg .f32 %f<3>;
            .reg .b32 %r<6>;
            .reg .b64 %rd<5>;

            ld.param.u64 %rd1, [add_scalar_x];
            ld.param.f32 %f1, [add_scalar_v];
            ld.param.u32 %r2, [add_scalar_n];
            mov.u32 %r3, %ctaid.x;
            mov.u32 %r4, %ntid.x;
            mov.u32 %r5, %tid.x;
            mad.lo.s32 %r1, %r3, %r4, %r5;
            setp.ge.u32 %p1, %r1, %r2;
            @%p1 bra DONE;
            cvta.to.global.u64 %rd2, %rd1;
            mul.wide.u32 %rd3, %r1, 4;
            add.s64 %rd4, %rd2, %rd3;
            ld.global.f32 %f2, [%rd4];
            add.f32 %f2, %f2, %f1;
            st.global.f32 [%rd4], %f2;
        DONE:
            ret;
        }

        .visible .entry reverse_blocks(
            .param .u64 reverse_blocks_x
        )
        {
            .reg .f32 %f<2>;
            .reg .b32 %r<8>;
            .reg .b64 %rd<8>;

            ld.param.u64 %rd1, [reverse_blocks_x];
            cvta.to.global.u64 %rd1, %rd1;
            mov.u32 %r1, %tid.x;
            mov.u32 %r2, %ntid.x;
            mov.u32 %r3, %ctaid.x;
            mad.lo.s32 %r4, %r3, %r2, %r1;
            mul.wide.u32 %rd2, %r4, 4;
            add.s64 %rd3, %rd1, %rd2;
            ld.global.f32 %f1, [%rd3];
            mov.u64 %rd4, dyn_smem;
            mul.wide.u32 %rd5, %r1, 4;
            add.s64 %rd6, %rd4, %rd5;
            st.shared.f32 [%rd6], %f1;
            bar.sync 0;
            sub.s32 %r5, %r2, 1;
            sub.s32 %r6, %r5, %r1;
            mul.wide.u32 %rd5, %r6, 4;
            add.s64 %rd6, %rd4, %rd5;
            ld.shared.f32 %f1, [%rd6];
            st.global.f32 [%rd3], %f1;
            ret;
        }
        """;

    /// <summary>PTX the JIT rejects (an undeclared register), to check that its error log reaches the exception.</summary>
    public const string Broken = """
        .version 7.0
        .target sm_52
        .address_size 64

        .visible .entry broken()
        {
            mov.u32 %r_undeclared, 1;
            ret;
        }
        """;
}
