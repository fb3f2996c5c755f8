using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Kernels;
using SoftPrompt.Tests.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>
/// The tensor-core warp primitives of common.cuh (mma.m16n8k16, ldmatrix, cp.async, bf16x2 packing) checked lane by
/// lane against the PTX ISA's fragment tables, written out again here from the ISA's text — on the emulator, whose
/// layouts must match them for a kernel's layout mistake to fail on the CPU, and (Category "Gpu") on the hardware.
/// </summary>
[TestFixture(DeviceKind.Emulated)]
[TestFixture(DeviceKind.Gpu, Category = "Gpu")]
public sealed class TensorCorePrimitiveTests(DeviceKind kind)
{
    private IComputeDevice device = null!;

    [OneTimeSetUp]
    public void OpenDevice() => device = TestDevices.Open(kind);

    [OneTimeTearDown]
    public void CloseDevice() => (device as IDisposable)?.Dispose();

    /// <summary>
    /// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" (.f16 / .bf16 inputs, .f32 accumulators),
    /// with groupID = %laneid &gt;&gt; 2 and threadID_in_group = %laneid % 4. A holds a0..a7 in four .b32 registers
    /// (a0, a1 in the first, lower index in the low half), B b0..b3 in two, C and D c0..c3 as four floats.
    /// </summary>
    private static class Fragment
    {
        public static (int Row, int Col) A(int lane, int i)
        {
            int groupID = lane >> 2, threadIDInGroup = lane % 4;
            int row = i is 0 or 1 or 4 or 5 ? groupID : groupID + 8;
            int col = i < 4 ? threadIDInGroup * 2 + (i & 0x1) : threadIDInGroup * 2 + (i & 0x1) + 8;
            return (row, col);
        }

        public static (int Row, int Col) B(int lane, int i)
        {
            int groupID = lane >> 2, threadIDInGroup = lane % 4;
            int row = i < 2 ? threadIDInGroup * 2 + (i & 0x1) : threadIDInGroup * 2 + (i & 0x1) + 8;
            return (row, groupID);
        }

        public static (int Row, int Col) C(int lane, int i)
        {
            int groupID = lane >> 2, threadIDInGroup = lane % 4;
            int row = i < 2 ? groupID : groupID + 8;
            return (row, threadIDInGroup * 2 + (i & 0x1));
        }

        /// <summary>A matrix's fragment registers for every lane ([32, elements / 2]), from <paramref name="place"/>.</summary>
        public static uint[] Registers(ushort[,] bits, int elements, Func<int, int, (int Row, int Col)> place)
        {
            var registers = new uint[32 * elements / 2];
            for (int lane = 0; lane < 32; lane++)
                for (int i = 0; i < elements; i++)
                {
                    var (row, col) = place(lane, i);
                    registers[lane * elements / 2 + i / 2] |= (uint)bits[row, col] << (16 * (i % 2));
                }
            return registers;
        }
    }

    private sealed record MmaProblem(string Name, float[,] A, float[,] B, float[,] C);

    private static float[,] Matrix(int rows, int cols, Func<int, int, float> value)
    {
        var m = new float[rows, cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) m[r, c] = value(r, c);
        return m;
    }

    private static ushort Bits(float value, bool fp16) => fp16 ? BitConverter.HalfToUInt16Bits((Half)value) : SelftestKernelTests.Bf16Bits(value);

    private static float Value(ushort bits, bool fp16) => fp16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.UInt32BitsToSingle((uint)bits << 16);

    private static ushort[,] Encode(float[,] m, bool fp16)
    {
        var bits = new ushort[m.GetLength(0), m.GetLength(1)];
        for (int r = 0; r < m.GetLength(0); r++)
            for (int c = 0; c < m.GetLength(1); c++) bits[r, c] = Bits(m[r, c], fp16);
        return bits;
    }

    /// <summary>
    /// Runs every problem in one launch; returns, per problem, D from the device and the reference A·B + C over the
    /// values the inputs round to, with Σ|a·b| + |c| per element (the scale of its rounding error).
    /// </summary>
    private (float[,] Device, double[,] Expected, double[,] Scale)[] RunMma(IReadOnlyList<MmaProblem> problems, bool fp16)
    {
        int count = problems.Count;
        var a = new uint[count * 32 * 4];
        var b = new uint[count * 32 * 2];
        var c = new float[count * 32 * 4];
        var results = new (float[,] Device, double[,] Expected, double[,] Scale)[count];
        for (int p = 0; p < count; p++)
        {
            ushort[,] aBits = Encode(problems[p].A, fp16), bBits = Encode(problems[p].B, fp16);
            Fragment.Registers(aBits, 8, Fragment.A).CopyTo(a, p * 32 * 4);
            Fragment.Registers(bBits, 4, Fragment.B).CopyTo(b, p * 32 * 2);
            for (int lane = 0; lane < 32; lane++)
                for (int i = 0; i < 4; i++)
                {
                    var (row, col) = Fragment.C(lane, i);
                    c[(p * 32 + lane) * 4 + i] = problems[p].C[row, col];
                }
            var expected = new double[16, 8];
            var scale = new double[16, 8];
            for (int row = 0; row < 16; row++)
                for (int col = 0; col < 8; col++)
                {
                    double sum = problems[p].C[row, col], magnitude = Math.Abs(sum);
                    for (int k = 0; k < 16; k++)
                    {
                        double product = (double)Value(aBits[row, k], fp16) * Value(bBits[k, col], fp16);
                        sum += product;
                        magnitude += Math.Abs(product);
                    }
                    expected[row, col] = sum;
                    scale[row, col] = magnitude;
                }
            results[p] = (new float[16, 8], expected, scale);
        }

        using var aBuffer = device.Upload(a);
        using var bBuffer = device.Upload(b);
        using var cBuffer = device.Upload(c);
        using var dBuffer = device.Allocate<float>(c.Length);
        SelftestMma.Launch(device, aBuffer.Span, bBuffer.Span, cBuffer.Span, dBuffer.Span, fp16);
        float[] d = dBuffer.Download();
        for (int p = 0; p < count; p++)
            for (int lane = 0; lane < 32; lane++)
                for (int i = 0; i < 4; i++)
                {
                    var (row, col) = Fragment.C(lane, i);
                    results[p].Device[row, col] = d[(p * 32 + lane) * 4 + i];
                }
        return results;
    }

    // Integer-valued probes: every product and sum is exact, so D must match bit for bit, and each value names the
    // input element that reached it (16·row + column of A; 8·k + column of B; 8·row + column + ½ of C).
    [TestCase(false)]
    [TestCase(true)]
    public void MmaTakesEveryFragmentElementFromWhereThePtxIsaPutsIt(bool fp16)
    {
        float[,] zeroA = Matrix(16, 16, (_, _) => 0), zeroC = Matrix(16, 8, (_, _) => 0);
        float[,] indexA = Matrix(16, 16, (i, k) => 16 * i + k);
        MmaProblem[] problems =
        [
            new("A columns 0-7 (B selects k = n)", indexA, Matrix(16, 8, (k, n) => k == n ? 1 : 0), zeroC),
            new("A columns 8-15 (B selects k = n + 8)", indexA, Matrix(16, 8, (k, n) => k == n + 8 ? 1 : 0), zeroC),
            new("B (A is the identity)", Matrix(16, 16, (i, k) => i == k ? 1 : 0), Matrix(16, 8, (k, n) => 8 * k + n), zeroC),
            new("C (A and B are zero)", zeroA, Matrix(16, 8, (_, _) => 0), Matrix(16, 8, (i, n) => 8 * i + n + 0.5f)),
            new("small integers", Matrix(16, 16, (i, k) => (3 * i + 5 * k) % 17 - 8), Matrix(16, 8, (k, n) => (7 * k + 2 * n) % 13 - 6),
                Matrix(16, 8, (i, n) => i - 2 * n)),
        ];
        var results = RunMma(problems, fp16);
        for (int p = 0; p < problems.Length; p++)
            for (int lane = 0; lane < 32; lane++)
                for (int i = 0; i < 4; i++)
                {
                    var (row, col) = Fragment.C(lane, i);
                    Assert.That(results[p].Device[row, col], Is.EqualTo((float)results[p].Expected[row, col]),
                        $"{problems[p].Name}: lane {lane} d{i} (row {row}, column {col})");
                }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void MmaMultipliesRandomMatricesWithFp32Accumulation(bool fp16)
    {
        var rng = new Random(fp16 ? 12 : 11);
        float Uniform(float range) => (float)((rng.NextDouble() * 2 - 1) * range);
        var problems = new MmaProblem[8];
        for (int p = 0; p < problems.Length; p++)
            problems[p] = new($"random {p}", Matrix(16, 16, (_, _) => Uniform(2)), Matrix(16, 8, (_, _) => Uniform(2)), Matrix(16, 8, (_, _) => Uniform(4)));
        var results = RunMma(problems, fp16);
        for (int p = 0; p < problems.Length; p++)
            for (int row = 0; row < 16; row++)
                for (int col = 0; col < 8; col++)
                {
                    // Tensor cores truncate while aligning addends; 1e-5 of the terms' magnitude is far above that and
                    // far below what one misplaced element changes.
                    double tolerance = 1e-5 * results[p].Scale[row, col];
                    Assert.That(results[p].Device[row, col], Is.EqualTo(results[p].Expected[row, col]).Within(tolerance),
                        $"{problems[p].Name}: D[{row}, {col}]");
                }
    }

    /// <summary>Tile row <c>rows[8j + r]</c> is row r of matrix j; lane i gets (row i/4, columns 2(i%4), 2(i%4)+1), .trans the transpose.</summary>
    private static uint LdmatrixRegister(ushort[] tile, int[] rows, int matrix, int lane, bool transpose)
    {
        ushort Element(int row, int col) => tile[8 * rows[8 * matrix + row] + col];
        return transpose
            ? Element(2 * (lane % 4), lane / 4) | (uint)Element(2 * (lane % 4) + 1, lane / 4) << 16
            : Element(lane / 4, 2 * (lane % 4)) | (uint)Element(lane / 4, 2 * (lane % 4) + 1) << 16;
    }

    /// <summary>Per lane { x4 r0..r3, x4.trans r0..r3, x2 r0 r1, x2.trans r0 r1 }.</summary>
    private uint[] RunLdmatrix(ushort[] tile, int[] rows)
    {
        using var tileBuffer = device.Upload(tile);
        using var rowBuffer = device.Upload(rows);
        using var output = device.Allocate<uint>(32 * 12);
        SelftestLdmatrix.Launch(device, tileBuffer.Span, rowBuffer.Span, output.Span);
        return output.Download();
    }

    [Test]
    public void LdmatrixGivesEachLaneItsPairOfEveryMatrix()
    {
        var rng = new Random(3);
        ushort[] tile = [.. Enumerable.Range(1, SelftestLdmatrix.TileRows * 8).Select(e => (ushort)e)];
        int[] rows = [.. Enumerable.Range(0, SelftestLdmatrix.TileRows).OrderBy(_ => rng.Next()).Take(32)];
        uint[] output = RunLdmatrix(tile, rows);
        for (int lane = 0; lane < 32; lane++)
        {
            uint[] expected =
            [
                .. Enumerable.Range(0, 4).Select(j => LdmatrixRegister(tile, rows, j, lane, transpose: false)),
                .. Enumerable.Range(0, 4).Select(j => LdmatrixRegister(tile, rows, j, lane, transpose: true)),
                .. Enumerable.Range(0, 2).Select(j => LdmatrixRegister(tile, rows, j, lane, transpose: false)),
                .. Enumerable.Range(0, 2).Select(j => LdmatrixRegister(tile, rows, j, lane, transpose: true)),
            ];
            Assert.That(output.AsSpan(12 * lane, 12).ToArray(), Is.EqualTo(expected), $"lane {lane}");
        }
    }

    // The addressing the GEMM kernel uses, checked against the mma table: ldmatrix.x4 of a row-major 16x16 A is A's
    // fragment; ldmatrix.x2.trans of a k-major 16x8 B, and ldmatrix.x2 of an n-major one, are B's.
    [Test]
    public void LdmatrixOfStoredTilesYieldsTheMmaFragments()
    {
        ushort[,] a = new ushort[16, 16], b = new ushort[16, 8];
        for (int r = 0; r < 16; r++)
            for (int c = 0; c < 16; c++) a[r, c] = (ushort)(0x100 * r + c + 1);
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 8; n++) b[k, n] = (ushort)(0x100 * k + n + 0x8001);
        uint[] aFragment = Fragment.Registers(a, 8, Fragment.A), bFragment = Fragment.Registers(b, 4, Fragment.B);

        // A row r, columns 8h..8h+7 is tile row 2r + h; lane l addresses row l % 16, columns 8 (l / 16).
        ushort[] tile = new ushort[SelftestLdmatrix.TileRows * 8];
        for (int r = 0; r < 16; r++)
            for (int c = 0; c < 16; c++) tile[8 * (2 * r + c / 8) + c % 8] = a[r, c];
        uint[] output = RunLdmatrix(tile, [.. Enumerable.Range(0, 32).Select(l => 2 * (l % 16) + l / 16)]);
        for (int lane = 0; lane < 32; lane++)
            Assert.That(output.AsSpan(12 * lane, 4).ToArray(), Is.EqualTo(aFragment.AsSpan(4 * lane, 4).ToArray()), $"A, lane {lane}");

        // B k-major: row k is tile row k; lane l < 16 addresses k = l (x2.trans).
        tile = new ushort[SelftestLdmatrix.TileRows * 8];
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 8; n++) tile[8 * k + n] = b[k, n];
        output = RunLdmatrix(tile, [.. Enumerable.Range(0, 32).Select(l => l % 16)]);
        for (int lane = 0; lane < 32; lane++)
            Assert.That(output.AsSpan(12 * lane + 10, 2).ToArray(), Is.EqualTo(bFragment.AsSpan(2 * lane, 2).ToArray()), $"B k-major, lane {lane}");

        // B n-major (Bᵀ row-major): column n, k 8h..8h+7 is tile row 2n + h; lane l < 16 addresses n = l % 8, h = l / 8 (x2).
        tile = new ushort[SelftestLdmatrix.TileRows * 8];
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 8; n++) tile[8 * (2 * n + k / 8) + k % 8] = b[k, n];
        output = RunLdmatrix(tile, [.. Enumerable.Range(0, 32).Select(l => 2 * (l % 8) + (l / 8) % 2)]);
        for (int lane = 0; lane < 32; lane++)
            Assert.That(output.AsSpan(12 * lane + 8, 2).ToArray(), Is.EqualTo(bFragment.AsSpan(2 * lane, 2).ToArray()), $"B n-major, lane {lane}");
    }

    [Test]
    public void CpAsyncLandsEveryGroupByItsWait()
    {
        var rng = new Random(8);
        float[] source = [.. Enumerable.Range(0, SelftestCpAsync.Elements).Select(_ => rng.NextSingle() * 200 - 100)];
        using var input = device.Upload(source);
        using var output = device.Allocate<float>(SelftestCpAsync.Elements);
        SelftestCpAsync.Launch(device, input.Span, output.Span);
        Assert.That(output.Download(), Is.EqualTo(source));
    }

    [Test]
    public void PackPutsTheLowerIndexInTheLowHalf()
    {
        float[] pairs = [1f, 2f, -0.5f, 3.14159265f, 1.00390625f /* bf16 tie → even */, 65520f /* fp16 → inf */, float.NaN, 0f, 1e-40f, -1e5f];
        using var input = device.Upload(pairs);
        using var output = device.Allocate<uint>(pairs.Length);
        SelftestPack.Launch(device, input.Span, output.Span);
        uint[] packed = output.Download();
        static ushort Half16(float v) => float.IsNaN(v) ? (ushort)0x7fff : BitConverter.HalfToUInt16Bits((Half)v);
        for (int i = 0; i < pairs.Length / 2; i++)
        {
            float lo = pairs[2 * i], hi = pairs[2 * i + 1];
            Assert.That(packed[2 * i], Is.EqualTo(SelftestKernelTests.Bf16Bits(lo) | (uint)SelftestKernelTests.Bf16Bits(hi) << 16), $"bf16x2 of ({lo}, {hi})");
            Assert.That(packed[2 * i + 1], Is.EqualTo(Half16(lo) | (uint)Half16(hi) << 16), $"fp16x2 of ({lo}, {hi})");
        }
    }

    [TestCase(64, 64, 32)]
    [TestCase(64, 64, 64)]
    [TestCase(128, 192, 96)]
    public void GemmTileComposesCpAsyncLdmatrixAndMma(int m, int n, int k)
    {
        var rng = new Random(m + n + k);
        ushort[] a = [.. Enumerable.Range(0, m * k).Select(_ => SelftestKernelTests.Bf16Bits(rng.NextSingle() * 2 - 1))];
        ushort[] b = [.. Enumerable.Range(0, k * n).Select(_ => SelftestKernelTests.Bf16Bits(rng.NextSingle() * 2 - 1))];
        using var aBuffer = device.Upload(a);
        using var bBuffer = device.Upload(b);
        using var cBuffer = device.Allocate<float>(m * n);
        SelftestGemmBf16.Launch(device, aBuffer.Span, bBuffer.Span, cBuffer.Span, m, n, k);
        float[] c = cBuffer.Download();

        for (int row = 0; row < m; row++)
            for (int col = 0; col < n; col++)
            {
                double sum = 0, magnitude = 0;
                for (int i = 0; i < k; i++)
                {
                    double product = (double)Value(a[row * k + i], false) * Value(b[i * n + col], false);
                    sum += product;
                    magnitude += Math.Abs(product);
                }
                // fp32 accumulation over k / 16 mma steps: far within 1e-5 of the terms' magnitude.
                if (!(Math.Abs(c[row * n + col] - sum) <= 1e-5 * magnitude + 1e-6))  // NaN (a stale tile) fails too
                    Assert.Fail($"C[{row}, {col}] = {c[row * n + col]:R}, expected {sum:R} (m {m}, n {n}, k {k}).");
            }
    }
}
