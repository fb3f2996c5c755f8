using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>
/// common.cuh's tensor-core primitives (mma.m16n8k16 bf16, ldmatrix x4 / x4.trans / x2, cp.async) through
/// kernels/selftest.cu, against the fragment tables of the PTX ISA written here independently: on the emulator a wrong
/// lane ownership fails these tests; on a GPU (Category "Gpu") the hardware checks the tables themselves.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class TensorCorePrimitiveTests(DeviceKind kind) : KernelTestBase(kind)
{
    // PTX ISA, "Matrix Fragments for mma.m16n8k16" (.bf16): lane = 4·groupID + threadID_in_group.
    private static (int Row, int Col) AElement(int lane, int i)
    {
        int g = lane >> 2, t = lane & 3;
        int row = i < 2 || (i >= 4 && i < 6) ? g : g + 8;
        return (row, t * 2 + (i & 1) + (i >= 4 ? 8 : 0));
    }

    private static (int Row, int Col) BElement(int lane, int i) => ((lane & 3) * 2 + (i & 1) + (i >= 2 ? 8 : 0), lane >> 2);

    private static (int Row, int Col) CElement(int lane, int i) => (i < 2 ? lane >> 2 : (lane >> 2) + 8, (lane & 3) * 2 + (i & 1));

    private static ushort Bits(float x) => ElementConversion.SingleToBFloat16(x);

    private float[] RunMma(float[,] a, float[,] b, float[,] c)
    {
        var aRegisters = new uint[128];
        var bRegisters = new uint[64];
        var cValues = new float[128];
        for (int lane = 0; lane < 32; lane++)
        {
            for (int r = 0; r < 4; r++)
            {
                var (lowRow, lowCol) = AElement(lane, 2 * r);
                var (highRow, highCol) = AElement(lane, 2 * r + 1);
                aRegisters[4 * lane + r] = Bits(a[lowRow, lowCol]) | ((uint)Bits(a[highRow, highCol]) << 16);
            }
            for (int r = 0; r < 2; r++)
            {
                var (lowRow, lowCol) = BElement(lane, 2 * r);
                var (highRow, highCol) = BElement(lane, 2 * r + 1);
                bRegisters[2 * lane + r] = Bits(b[lowRow, lowCol]) | ((uint)Bits(b[highRow, highCol]) << 16);
            }
            for (int i = 0; i < 4; i++) cValues[4 * lane + i] = c[CElement(lane, i).Row, CElement(lane, i).Col];
        }
        using var da = Put(aRegisters);
        using var db = Put(bRegisters);
        using var dc = Put(cValues);
        using var dd = Zeros<float>(128);
        SelftestMma.Launch(Device, da.Span, db.Span, dc.Span, dd.Span);
        return dd.Read();
    }

    private static float[] Expected(float[,] a, float[,] b, float[,] c)
    {
        var d = new float[128];
        for (int lane = 0; lane < 32; lane++)
            for (int i = 0; i < 4; i++)
            {
                var (row, col) = CElement(lane, i);
                double sum = c[row, col];
                for (int k = 0; k < 16; k++) sum += (double)a[row, k] * b[k, col];
                d[4 * lane + i] = (float)sum;
            }
        return d;
    }

    [Test]
    public void MmaOfSmallIntegersIsExactInEveryLanesFragment()
    {
        // Distinct small integers everywhere: exact in bf16 and in every fp32 sum, so any misplaced element shows.
        var a = new float[16, 16];
        var b = new float[16, 8];
        var c = new float[16, 8];
        for (int i = 0; i < 16; i++) for (int k = 0; k < 16; k++) a[i, k] = (i * 16 + k) % 13 - 6;
        for (int k = 0; k < 16; k++) for (int j = 0; j < 8; j++) b[k, j] = (k * 8 + j) % 7 - 3;
        for (int i = 0; i < 16; i++) for (int j = 0; j < 8; j++) c[i, j] = 100 * i + j;
        Assert.That(RunMma(a, b, c), Is.EqualTo(Expected(a, b, c)));
    }

    [Test]
    public void MmaOfRandomBf16ValuesSumsInFp32()
    {
        var random = new Random(7);
        var a = new float[16, 16];
        var b = new float[16, 8];
        var c = new float[16, 8];
        float Bf16(double x) => BitConverter.UInt32BitsToSingle((uint)Bits((float)x) << 16);
        for (int i = 0; i < 16; i++) for (int k = 0; k < 16; k++) a[i, k] = Bf16(random.NextDouble() * 4 - 2);
        for (int k = 0; k < 16; k++) for (int j = 0; j < 8; j++) b[k, j] = Bf16(random.NextDouble() * 4 - 2);
        for (int i = 0; i < 16; i++) for (int j = 0; j < 8; j++) c[i, j] = (float)(random.NextDouble() - 0.5);
        Assert.That(RunMma(a, b, c), Is.EqualTo(Expected(a, b, c)).Within(1e-5f));
    }

    [Test]
    public void LdmatrixHandsEachLaneItsRowsOrColumnsAndCpAsyncCopiesTheTile()
    {
        // Element (matrix j, row r, column c) holds the 16-bit id 64j + 8r + c: ldmatrix moves bits, so ids show where each went.
        var ids = new ushort[256];
        for (int i = 0; i < 256; i++) ids[i] = (ushort)(i + 1);
        using var m = Put(ids);
        using var output = Zeros<uint>(320);
        SelftestLdmatrix.Launch(Device, m.Span, output.Span);
        var actual = output.Read();
        uint Id(int matrix, int row, int column) => (uint)(64 * matrix + 8 * row + column + 1);
        for (int lane = 0; lane < 32; lane++)
        {
            int g = lane >> 2, t = lane & 3;
            for (int j = 0; j < 4; j++)
            {
                // "Each thread holds row laneid/4, elements 2·(laneid%4) and +1" of each 8×8 matrix; .trans transposes.
                Assert.That(actual[10 * lane + j], Is.EqualTo(Id(j, g, 2 * t) | (Id(j, g, 2 * t + 1) << 16)), $"x4, lane {lane}, matrix {j}");
                Assert.That(actual[10 * lane + 4 + j], Is.EqualTo(Id(j, 2 * t, g) | (Id(j, 2 * t + 1, g) << 16)), $"x4.trans, lane {lane}, matrix {j}");
            }
            for (int j = 0; j < 2; j++)
                Assert.That(actual[10 * lane + 8 + j], Is.EqualTo(Id(j, g, 2 * t) | (Id(j, g, 2 * t + 1) << 16)), $"x2, lane {lane}, matrix {j}");
        }
    }
}
