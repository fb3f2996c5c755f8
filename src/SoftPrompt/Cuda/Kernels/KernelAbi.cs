using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace SoftPrompt.Cuda.Kernels;

/// <summary>One kernel parameter as a PTX <c>.entry</c> declares it: e.g. <c>.u64</c> (8 bytes), <c>.f32</c>, or an aligned <c>.b8</c> array (a struct by value).</summary>
public sealed record PtxParameter(string Type, int Size, bool IsFloat, bool IsAggregate);

/// <summary>A <c>.visible .entry</c> of a PTX module.</summary>
public sealed record PtxEntry(string Name, IReadOnlyList<PtxParameter> Parameters);

/// <summary>The kernel parameters a launch stub packs, in order, with the stub's name for messages.</summary>
public sealed record LauncherSignature(string Kernel, IReadOnlyList<Type> Parameters, string Launcher);

/// <summary>
/// The kernel ABI check: every kernel entry of the PTX module and of the emulator library must have exactly one
/// launch stub (generated into <c>KernelStubs</c> from the kernels' .cu declarations) that packs the same parameter
/// count, order and byte sizes (and float vs integer class, where PTX says it), and every stub must name an existing
/// kernel. So the stubs, the PTX nvcc built and the emulator's table cannot drift apart. Used by the tests and the
/// doctor command.
/// </summary>
public static partial class KernelAbi
{
    [GeneratedRegex(@"\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\)", RegexOptions.CultureInvariant)]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"^\.param\s+(?:\.align\s+(\d+)\s+)?\.(\w+)\s+(?:\.ptr(?:\s+(?:\.\w+|\d+))*\s+)?[\w$]+(?:\[(\d+)\])?$", RegexOptions.CultureInvariant)]
    private static partial Regex ParamPattern();

    /// <summary>Parses every <c>.entry NAME( .param … )</c> of a PTX module.</summary>
    public static IReadOnlyList<PtxEntry> ParsePtx(string ptx)
    {
        var entries = new List<PtxEntry>();
        foreach (Match match in EntryPattern().Matches(ptx))
        {
            var parameters = new List<PtxParameter>();
            foreach (string raw in match.Groups[2].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var p = ParamPattern().Match(Regex.Replace(raw, @"\s+", " "));
                if (!p.Success) throw new FormatException($"PTX entry {match.Groups[1].Value}: cannot read the parameter '{raw}'.");
                string type = p.Groups[2].Value;
                int elementSize = type.Length > 1 && int.TryParse(type.AsSpan(1), out int bits) ? bits / 8 : 0;
                if (elementSize == 0) throw new FormatException($"PTX entry {match.Groups[1].Value}: unknown parameter type .{type}.");
                bool isArray = p.Groups[3].Success;
                int size = isArray ? elementSize * int.Parse(p.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture) : elementSize;
                parameters.Add(new PtxParameter(type, size, IsFloat: type[0] == 'f', IsAggregate: isArray));
            }
            entries.Add(new PtxEntry(match.Groups[1].Value, parameters));
        }
        return entries;
    }

    /// <summary>
    /// Every launch stub of the generated <c>KernelStubs</c>: a static method <c>kernel(IComputeDevice, LaunchShape,
    /// parameters…)</c> named after its kernel. The family stubs, which take a head-size tile before the shape and call
    /// the per-tile stubs, and the storage-generic stubs, which call the fp32 or bf16 one, are not kernels of their own.
    /// </summary>
    public static IReadOnlyList<LauncherSignature> FindLaunchers() => FindLaunchers(typeof(KernelStubs));

    /// <summary>The launch stubs of another generated stubs class (the tests' test-only kernel module).</summary>
    public static IReadOnlyList<LauncherSignature> FindLaunchers(Type stubs)
    {
        var result = new List<LauncherSignature>();
        foreach (var method in stubs.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
        {
            var parameters = method.GetParameters();
            if (method.IsGenericMethodDefinition) continue;
            if (parameters.Length < 2 || parameters[0].ParameterType != typeof(IComputeDevice) || parameters[1].ParameterType != typeof(LaunchShape)) continue;
            result.Add(new LauncherSignature(method.Name, parameters.Skip(2).Select(p => p.ParameterType).ToList(), $"{stubs.Name}.{method.Name}"));
        }
        return result;
    }

    /// <summary>Problems between a PTX module's entries and the launchers; empty when they agree.</summary>
    public static IReadOnlyList<string> CheckPtx(IReadOnlyList<PtxEntry> entries, IReadOnlyList<LauncherSignature> launchers)
    {
        var problems = new List<string>();
        var byKernel = Group(launchers, problems);
        foreach (var entry in entries)
        {
            if (!byKernel.TryGetValue(entry.Name, out var launcher))
            {
                problems.Add($"PTX kernel {entry.Name}({Describe(entry.Parameters)}) has no launch stub: is it declared 'extern \"C\" __global__ void' in a kernels/*.cu file the library build sees?");
                continue;
            }
            if (launcher.Parameters.Count != entry.Parameters.Count)
            {
                problems.Add($"{launcher.Launcher} declares {launcher.Parameters.Count} parameters for {entry.Name}, the PTX entry has {entry.Parameters.Count} ({Describe(entry.Parameters)}).");
                continue;
            }
            for (int i = 0; i < entry.Parameters.Count; i++)
            {
                var ptx = entry.Parameters[i];
                var (size, isFloat, isScalar) = Describe(launcher.Parameters[i]);
                if (size != ptx.Size)
                    problems.Add($"{launcher.Launcher}: parameter {i} of {entry.Name} is {Name(launcher.Parameters[i])} ({size} bytes), the PTX has .{ptx.Type}{(ptx.IsAggregate ? "[]" : "")} ({ptx.Size} bytes).");
                else if (!ptx.IsAggregate && isScalar && isFloat != ptx.IsFloat)
                    problems.Add($"{launcher.Launcher}: parameter {i} of {entry.Name} is {Name(launcher.Parameters[i])}, the PTX has .{ptx.Type} ({(ptx.IsFloat ? "floating point" : "integer or pointer")}).");
            }
        }
        var names = entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var launcher in byKernel.Values.Where(l => !names.Contains(l.Kernel)))
            problems.Add($"{launcher.Launcher} declares kernel {launcher.Kernel}, which is not in the PTX module.");
        return problems;
    }

    /// <summary>Problems between the emulator library's kernel table (names and parameter byte sizes) and the launchers.</summary>
    public static IReadOnlyList<string> CheckEmulator(IEnumerable<(string Name, IReadOnlyList<int> ParameterSizes)> kernels, IReadOnlyList<LauncherSignature> launchers)
    {
        var problems = new List<string>();
        var byKernel = Group(launchers, problems);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, sizes) in kernels)
        {
            names.Add(name);
            if (!byKernel.TryGetValue(name, out var launcher))
            {
                problems.Add($"Emulator kernel {name} ({sizes.Count} parameters) has no launch stub.");
                continue;
            }
            if (launcher.Parameters.Count != sizes.Count)
            {
                problems.Add($"{launcher.Launcher} declares {launcher.Parameters.Count} parameters for {name}, the emulator's kernel takes {sizes.Count}.");
                continue;
            }
            for (int i = 0; i < sizes.Count; i++)
            {
                int size = Describe(launcher.Parameters[i]).Size;
                if (size != sizes[i])
                    problems.Add($"{launcher.Launcher}: parameter {i} of {name} is {Name(launcher.Parameters[i])} ({size} bytes), the emulator's kernel takes {sizes[i]} bytes.");
            }
        }
        foreach (var launcher in byKernel.Values.Where(l => !names.Contains(l.Kernel)))
            problems.Add($"{launcher.Launcher} declares kernel {launcher.Kernel}, which is not in the emulator library.");
        return problems;
    }

    private static Dictionary<string, LauncherSignature> Group(IReadOnlyList<LauncherSignature> launchers, List<string> problems)
    {
        var byKernel = new Dictionary<string, LauncherSignature>(StringComparer.Ordinal);
        foreach (var launcher in launchers)
            if (!byKernel.TryAdd(launcher.Kernel, launcher))
                problems.Add($"Kernel {launcher.Kernel} has two launch stubs: {byKernel[launcher.Kernel].Launcher} and {launcher.Launcher}.");
        return byKernel;
    }

    /// <summary>
    /// Byte size, float class and whether a stub parameter type is a scalar (not a struct): a device span is packed as
    /// its 8-byte address, a scalar as itself.
    /// </summary>
    public static (int Size, bool IsFloat, bool IsScalar) Describe(Type type)
    {
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(DeviceSpan<>)) return (sizeof(ulong), false, true);
        if (type == typeof(float) || type == typeof(double) || type == typeof(Half)) return (Marshal.SizeOf(type), true, true);
        if (type == typeof(bool)) return (1, false, true);
        if (type.IsPrimitive) return (Marshal.SizeOf(type), false, true);
        if (type.IsValueType) return (Marshal.SizeOf(type), false, false);
        throw new ArgumentException($"Kernel parameter type {type} is not a device span, scalar or struct.");
    }

    private static string Name(Type type) =>
        type.IsGenericType && type.GetGenericTypeDefinition() == typeof(DeviceSpan<>) ? $"DeviceSpan<{type.GetGenericArguments()[0].Name}>" : type.Name;

    private static string Describe(IReadOnlyList<PtxParameter> parameters) =>
        string.Join(", ", parameters.Select(p => p.IsAggregate ? $".b8[{p.Size}]" : "." + p.Type));
}
