namespace SoftPrompt.Cuda;

/// <summary>What a planned tensor holds, for the memory report: frozen weights, activations saved for the reverse pass, scratch, or the trained prompts with their gradient and optimizer state.</summary>
public enum DeviceMemoryKind { Weights, Activations, Workspace, PromptState }

/// <summary>One tensor of an arena: <see cref="Bytes"/> bytes at <see cref="Offset"/> from the arena's start.</summary>
public readonly record struct ArenaTensor(string Name, DeviceMemoryKind Kind, long Offset, long Bytes);

/// <summary>
/// A device memory plan declared once: a plan's constructor takes every tensor it needs from an <see cref="ArenaCarver"/>,
/// and <see cref="Allocate{TPlan}"/> runs that declaration twice — once to sum the sizes, once to carve them out of one
/// allocation of exactly that sum — so a size can never be counted apart from the tensor it belongs to (llm.c's
/// fill_in_activation_sizes → malloc_and_point, with the two steps made from one list). <see cref="Measure{TPlan}"/> runs the
/// declaration alone, without a device: the plan's spans then lie in an address range no allocation has, which is enough to
/// check a plan at real shapes (sizes, bounds, overlaps) and to answer "does it fit" before anyone has a GPU.
/// </summary>
public sealed class DeviceArena : IDisposable
{
    /// <summary>Every tensor starts on a 256-byte boundary (cudaMalloc's alignment): vector loads and cuBLAS get aligned pointers.</summary>
    public const int Alignment = 256;

    /// <summary>Where a measured (unallocated) arena's spans start: non-zero, aligned, and far from any real allocation.</summary>
    public const ulong MeasuredBase = 1UL << 56;

    private readonly List<ArenaTensor> tensors = [];
    private DeviceBuffer<byte>? buffer;
    /// <summary>Under AddressSanitizer, one allocation per tensor (see <see cref="Allocate{TPlan}"/>); otherwise null.</summary>
    private List<DeviceBuffer<byte>>? separate;
    private IComputeDevice? separateDevice;

    private DeviceArena(string name) => Name = name;

    /// <summary>What the plan is ("gpt2 weights", "t5 plan"), for reports and errors.</summary>
    public string Name { get; }
    /// <summary>The carved tensors, in declaration order.</summary>
    public IReadOnlyList<ArenaTensor> Tensors => tensors;
    /// <summary>Bytes the arena spans (its allocation's size once allocated).</summary>
    public long Bytes { get; private set; }
    /// <summary>Whether device memory backs the spans (false for a <see cref="Measure{TPlan}"/>d plan).</summary>
    public bool IsAllocated => buffer is not null || separate is not null;
    public ulong BaseAddress => buffer?.Address ?? MeasuredBase;

    /// <summary>Bytes of the tensors of one kind (alignment padding included).</summary>
    public long BytesOf(DeviceMemoryKind kind)
    {
        long sum = 0;
        foreach (var t in tensors)
            if (t.Kind == kind) sum += Aligned(t.Bytes);
        return sum;
    }

    /// <summary>
    /// Declares <typeparamref name="TPlan"/>'s tensors, allocates their sum once on <paramref name="device"/> and builds the plan
    /// on it. On the kernel emulator built with AddressSanitizer every tensor gets an allocation of its own instead, so a
    /// kernel that reads or writes past its tensor stops the run there rather than touching its neighbour in the arena.
    /// </summary>
    public static TPlan Allocate<TPlan>(IComputeDevice device, string name, Func<ArenaCarver, TPlan> declare)
    {
        var sizing = new ArenaCarver(new DeviceArena(name), device: null);
        declare(sizing);
        long bytes = sizing.Arena.Bytes;
        var arena = device is Emulation.EmulatedDevice { IsAddressSanitized: true }
            ? new DeviceArena(name) { separate = [], separateDevice = device }
            : new DeviceArena(name) { buffer = device.Allocate<byte>(Math.Max(bytes, 1)) };
        try
        {
            var carver = new ArenaCarver(arena, device);
            var plan = declare(carver);
            arena.CheckSameTensors(sizing.Arena);
            return plan;
        }
        catch
        {
            arena.Dispose();
            throw;
        }
    }

    /// <summary>Builds <typeparamref name="TPlan"/> without a device: its spans are placed but nothing backs them (see <see cref="MeasuredBase"/>).</summary>
    public static TPlan Measure<TPlan>(string name, Func<ArenaCarver, TPlan> declare) => declare(new ArenaCarver(new DeviceArena(name), device: null));

    internal static long Aligned(long bytes) => checked((bytes + Alignment - 1) / Alignment * Alignment);

    private void CheckSameTensors(DeviceArena measured)
    {
        for (int i = 0; i < Math.Max(tensors.Count, measured.tensors.Count); i++)
        {
            var carved = i < tensors.Count ? tensors[i] : default;
            var sized = i < measured.tensors.Count ? measured.tensors[i] : default;
            if (carved != sized)
                throw new InvalidOperationException($"{Name}: tensor {i} was declared as '{sized.Name}' ({sized.Bytes} bytes) when measured and as " +
                    $"'{carved.Name}' ({carved.Bytes} bytes) when carved; a plan must declare the same tensors every time.");
        }
    }

    /// <summary>Records the next tensor and returns its device address.</summary>
    internal ulong Take(string tensorName, DeviceMemoryKind kind, long bytes)
    {
        long offset = Bytes;
        long end = checked(offset + Aligned(bytes));
        if (buffer is not null && end > buffer.Length)
            throw new InvalidOperationException($"{Name}: tensor '{tensorName}' ({bytes} bytes at {offset}) does not fit the {buffer.Length} bytes measured for the plan.");
        tensors.Add(new ArenaTensor(tensorName, kind, offset, bytes));
        Bytes = end;
        if (separate is null) return BaseAddress + (ulong)offset;
        var own = separateDevice!.Allocate<byte>(Math.Max(bytes, 1));
        separate.Add(own);
        return own.Address;
    }

    public void Dispose()
    {
        buffer?.Dispose();
        buffer = null;
        if (separate is null) return;
        foreach (var own in separate) own.Dispose();
        separate.Clear();
    }
}

/// <summary>
/// Hands out a plan's tensors from its <see cref="DeviceArena"/>, in declaration order. A plan keeps no size of its own:
/// whatever it takes here is what gets allocated. Carving for a measurement (no device) places the spans and records
/// them but copies and zeroes nothing; <see cref="Device"/> then refuses every use.
/// </summary>
public sealed class ArenaCarver
{
    private readonly IComputeDevice? device;

    internal ArenaCarver(DeviceArena arena, IComputeDevice? device)
    {
        Arena = arena;
        this.device = device;
    }

    /// <summary>The arena being carved: the plan keeps it and disposes it.</summary>
    public DeviceArena Arena { get; }
    /// <summary>What the next tensors hold (set before each group of declarations).</summary>
    public DeviceMemoryKind Kind { get; set; } = DeviceMemoryKind.Workspace;
    /// <summary>Whether this pass backs the spans with device memory (false while sizing or measuring).</summary>
    public bool Allocates => device is not null && Arena.IsAllocated;
    /// <summary>The device the plan runs on; a measured plan's device refuses every call.</summary>
    public IComputeDevice Device => Allocates ? device! : MeasuredPlanDevice.Instance;

    /// <summary><paramref name="count"/> elements of <typeparamref name="T"/>, uninitialised.</summary>
    public unsafe DeviceSpan<T> Take<T>(string name, long count) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count, name);
        return new DeviceSpan<T>(Arena.Take(name, Kind, checked(count * sizeof(T))), count);
    }

    /// <summary><paramref name="count"/> elements of <typeparamref name="T"/>, zeroed once when the arena is allocated.</summary>
    public DeviceSpan<T> Zeroed<T>(string name, long count) where T : unmanaged
    {
        var span = Take<T>(name, count);
        if (Allocates && count > 0) device!.Zero(span);
        return span;
    }

    /// <summary>
    /// A frozen weight matrix of <paramref name="count"/> elements: as <see cref="Upload(string, long, TensorValues?)"/> in fp32,
    /// or stored bf16 when <paramref name="bf16"/> (<see cref="TensorValues.CopyToBf16"/>). A bf16 matrix carved with
    /// <paramref name="zeroPadding"/> elements more holds zeros there (rows a GEMM may run over to keep its shape whole).
    /// </summary>
    internal DeviceMatrix UploadMatrix(string name, long count, TensorValues? values, bool bf16, long zeroPadding = 0)
    {
        if (!bf16) return Upload(name, count, values);
        ArgumentOutOfRangeException.ThrowIfNegative(zeroPadding);
        var span = Take<ushort>(name, checked(count + zeroPadding));
        if (NeedsValues(name, count, values?.Count, values))
        {
            values.CopyToBf16(device!, span.Slice(0, count));
            if (zeroPadding > 0) device!.Zero(span.Slice(count, zeroPadding));
        }
        return DeviceMatrix.OfBf16(span);
    }

    /// <summary>
    /// Frozen matrices stacked one after another in one tensor (each part's rows right after the previous part's), so one
    /// GEMM can multiply by all of them at once; each part is checked and uploaded under its own name.
    /// </summary>
    internal DeviceMatrix UploadStackedMatrix(string name, bool bf16, params (string Name, long Count, TensorValues? Values)[] parts)
    {
        long total = parts.Sum(part => part.Count);
        var stacked = bf16 ? DeviceMatrix.OfBf16(Take<ushort>(name, total)) : Take<float>(name, total);
        long start = 0;
        foreach (var (partName, count, values) in parts)
        {
            if (NeedsValues(partName, count, values?.Count, values))
            {
                if (bf16) values.CopyToBf16(device!, stacked.Bf16.Slice(start, count));
                else values.CopyTo(device!, stacked.Fp32.Slice(start, count));
            }
            start += count;
        }
        return stacked;
    }

    /// <summary>A frozen fp32 tensor of <paramref name="count"/> elements, written from <paramref name="values"/> once the arena is allocated (null while measuring).</summary>
    internal DeviceSpan<float> Upload(string name, long count, TensorValues? values)
    {
        var span = Take<float>(name, count);
        if (NeedsValues(name, count, values?.Count, values)) values.CopyTo(device!, span);
        return span;
    }

    /// <summary>
    /// A tensor of <paramref name="count"/> elements holding <paramref name="values"/> (copied up once the arena is allocated;
    /// null while measuring a plan from shapes alone). A host tensor of another length is an error naming the tensor.
    /// </summary>
    public DeviceSpan<T> Upload<T>(string name, long count, T[]? values) where T : unmanaged
    {
        var span = Take<T>(name, count);
        if (NeedsValues(name, count, values?.LongLength, values)) device!.CopyToDevice<T>(values, span);
        return span;
    }

    /// <summary>Checks a tensor's host values against its count; true when they must be copied up now (the arena is allocated).</summary>
    private bool NeedsValues<TValues>(string name, long count, long? valueCount, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] TValues? values) where TValues : class
    {
        if (valueCount is { } held && held != count)
            throw new ArgumentException($"{Arena.Name}: tensor '{name}' holds {held} values, the configuration needs {count}.");
        if (!Allocates || count == 0) return false;
        if (values is null) throw new ArgumentNullException(nameof(values), $"{Arena.Name}: tensor '{name}' has no host values to upload.");
        return true;
    }
}
