using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace SoftPrompt.Generators;

/// <summary>
/// Generates <c>SoftPrompt.Cuda.Kernels.KernelStubs</c> (or the class <see cref="KernelStubsType"/> names) from the .cu AdditionalFiles: one method per extern "C"
/// kernel, <c>name(IComputeDevice device, LaunchShape shape, …)</c>, whose remaining parameters are the kernel's own —
/// named as the .cu names them, in its order — and which packs them into the launch's argument array in that order.
/// Launchers pass those arguments by name (<see cref="KernelStubAnalyzer"/> insists), so the packing cannot disagree
/// with the kernel. Kernels compiled once per head size (<c>name_hsNN</c>, same parameters) also get one stub for the
/// family, <c>name(device, headSizeTile, shape, …)</c>; a kernel or family with a bf16-storage twin <c>name_bf16</c> also gets
/// <c>name&lt;TStorage&gt;(…)</c>, which picks one of the two by the storage type. The class is not partial: no hand-written code can join it.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class KernelStubGenerator : IIncrementalGenerator
{
    public const string HintName = "KernelStubs.g.cs";

    public static readonly DiagnosticDescriptor Unreadable = new(
        "SP0003", "Kernel declaration the stub generator cannot read",
        "{0}: write 'extern \"C\" __global__ void [__launch_bounds__(...)] name(type name, ...)' with parameter types the stub generator maps ({1})",
        "SoftPrompt.Kernels", DiagnosticSeverity.Error, isEnabledByDefault: true);

    // The stubs' own parameters and locals; a kernel parameter of the same name would collide with them.
    private static readonly string[] Reserved = { "device", "shape", "headSizeTile" };

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var files = context.AdditionalTextsProvider
            .Where(file => file.Path.EndsWith(".cu", StringComparison.Ordinal))
            // Path and text are strings, so an unchanged file set compares equal and the output step is skipped.
            .Select((file, token) => (Path: file.Path, Text: file.GetText(token)?.ToString() ?? ""))
            .Collect();
        var stubsType = context.AnalyzerConfigOptionsProvider.Select((options, _) => KernelStubsType.Of(options));
        context.RegisterSourceOutput(files.Combine(stubsType), (output, input) =>
        {
            var (texts, stubs) = input;
            var parsed = texts.Select(t => KernelFile.Parse(t.Path, t.Text)).ToList();
            bool readable = true;
            foreach (var file in parsed)
                foreach (var (line, message) in Problems(file))
                {
                    output.ReportDiagnostic(Diagnostic.Create(Unreadable, LocationOf(file.Path, line), message, KernelParameter.MappedTypes));
                    readable = false;
                }
            if (readable) output.AddSource(HintName, Emit(stubs, parsed.SelectMany(f => f.Kernels).OrderBy(k => k.Name, StringComparer.Ordinal).ToList()));
        });
    }

    /// <summary>Declarations of <paramref name="file"/> that cannot become stubs, by line, with what is wrong.</summary>
    private static IEnumerable<(SourceLine Line, string Message)> Problems(KernelFile file)
    {
        string name = System.IO.Path.GetFileName(file.Path);
        foreach (var line in file.UnreadableLines)
            yield return (line, $"kernels/{name}:{line.Number + 1}: unreadable kernel declaration");
        foreach (var kernel in file.Kernels)
            foreach (var p in kernel.Parameters)
            {
                if (p.StubType is null)
                    yield return (kernel.Line, $"kernels/{name}:{kernel.Line.Number + 1}: {kernel.Name}: parameter '{p.Name}' has the C type '{p.CType}'");
                else if (Reserved.Contains(p.Name) || p.Name.StartsWith("__", StringComparison.Ordinal))
                    yield return (kernel.Line, $"kernels/{name}:{kernel.Line.Number + 1}: {kernel.Name}: parameter '{p.Name}' is a name the stub uses itself");
            }
    }

    private static Location LocationOf(string path, SourceLine line) =>
        Location.Create(path, new TextSpan(line.Start, line.Length),
            new LinePositionSpan(new LinePosition(line.Number, 0), new LinePosition(line.Number, line.Length)));

    // A .cu name that is a C# keyword (in, out, …) is written verbatim: @out.
    private static string Id(string name) =>
        SyntaxFacts.IsReservedKeyword(SyntaxFacts.GetKeywordKind(name)) ? "@" + name : name;

    /// <summary>The generated class <paramref name="stubsType"/> (a full name) for <paramref name="kernels"/> (sorted by name).</summary>
    private static string Emit(string stubsType, IReadOnlyList<KernelDeclaration> kernels)
    {
        int dot = stubsType.LastIndexOf('.');
        var s = new StringBuilder();
        s.AppendLine("// <auto-generated/> by SoftPrompt.Generators.KernelStubGenerator from kernels/*.cu: edit the kernels, not this file.");
        s.AppendLine("#nullable enable");
        s.AppendLine($"namespace {stubsType.Substring(0, dot)};");
        s.AppendLine();
        s.AppendLine("/// <summary>");
        s.AppendLine("/// One launch stub per extern \"C\" kernel of kernels/*.cu: the kernel's parameters by its own names, packed in its");
        s.AppendLine("/// order. A device span is passed as its address, an empty one as a null pointer (an absent optional buffer).");
        s.AppendLine("/// </summary>");
        s.AppendLine($"internal static unsafe class {stubsType.Substring(dot + 1)}");
        s.AppendLine("{");
        var families = Families(kernels);
        var members = kernels.Select(Stub).Concat(families.Select(family => Family(family.Key, family.Value)))
            .Concat(StoragePairs(kernels, families).Select(Storage)).ToList();
        for (int i = 0; i < members.Count; i++)
            (i == 0 ? s : s.AppendLine()).Append(members[i]);
        s.AppendLine("}");
        return s.ToString();
    }

    private static string Stub(KernelDeclaration k)
    {
        var s = new StringBuilder();
        s.AppendLine($"    /// <summary>kernels/{k.File}: {k.Name}({string.Join(", ", Describe(k))}).</summary>");
        s.AppendLine($"    public static void {k.Name}(global::SoftPrompt.Cuda.IComputeDevice device, global::SoftPrompt.Cuda.Kernels.LaunchShape shape{Declare(k.Parameters)})");
        s.AppendLine("    {");
        for (int i = 0; i < k.Parameters.Length; i++)
            if (k.Parameters[i].IsPointer) s.AppendLine($"        ulong __address{i} = {Id(k.Parameters[i].Name)}.Length == 0 ? 0UL : {Id(k.Parameters[i].Name)}.Address;");
        s.AppendLine($"        void** __arguments = stackalloc void*[{Math.Max(1, k.Parameters.Length)}];");
        for (int i = 0; i < k.Parameters.Length; i++)
            s.AppendLine($"        __arguments[{i}] = &{(k.Parameters[i].IsPointer ? "__address" + i : Id(k.Parameters[i].Name))};");
        s.AppendLine($"        device.Launch(device.GetKernel(\"{k.Name}\"), shape.Grid, shape.Block, shape.SharedBytes, __arguments, {k.Parameters.Length});");
        s.AppendLine("    }");
        return s.ToString();
    }

    private static string Family(string family, IReadOnlyList<(int Tile, KernelDeclaration Kernel)> members)
    {
        var s = new StringBuilder();
        var parameters = members[0].Kernel.Parameters;
        string tiles = string.Join(", ", members.Select(m => m.Tile));
        string forward = string.Join(", ", parameters.Select(p => $"{Id(p.Name)}: {Id(p.Name)}"));
        s.AppendLine($"    /// <summary>{family}_hs{{{tiles}}}: one kernel per head-size tile, with the same parameters; <paramref name=\"headSizeTile\"/> picks it.</summary>");
        s.AppendLine($"    public static void {family}(global::SoftPrompt.Cuda.IComputeDevice device, int headSizeTile, global::SoftPrompt.Cuda.Kernels.LaunchShape shape{Declare(parameters)})");
        s.AppendLine("    {");
        s.AppendLine("        switch (headSizeTile)");
        s.AppendLine("        {");
        foreach (var (tile, kernel) in members)
            s.AppendLine($"            case {tile}: {kernel.Name}(device, shape, {forward}); return;");
        s.AppendLine($"            default: throw new global::System.ArgumentOutOfRangeException(nameof(headSizeTile), headSizeTile, \"{family} is compiled for head-size tiles {tiles} only.\");");
        s.AppendLine("        }");
        s.AppendLine("    }");
        return s.ToString();
    }

    /// <summary>
    /// A kernel (or head-size family) <c>X</c> with a twin <c>X_bf16</c> whose parameters are the same but for some
    /// float* that are bf16* there (<c>Varies</c>): one stub <c>X&lt;TStorage&gt;</c> for both, those parameters as
    /// <c>DeviceSpan&lt;TStorage&gt;</c>, so a launcher generic over the storage type has one call site per kernel.
    /// </summary>
    private static IEnumerable<(string Name, bool HeadSizeTile, ImmutableArray<KernelParameter> Parameters, bool[] Varies)> StoragePairs(
        IReadOnlyList<KernelDeclaration> kernels, Dictionary<string, IReadOnlyList<(int Tile, KernelDeclaration Kernel)>> families)
    {
        var callables = kernels.ToDictionary(k => k.Name, k => (HeadSizeTile: false, k.Parameters), StringComparer.Ordinal);
        foreach (var family in families) callables[family.Key] = (true, family.Value[0].Kernel.Parameters);
        foreach (var callable in callables.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            var (name, fp32) = (callable.Key, callable.Value);
            if (!callables.TryGetValue(name + "_bf16", out var bf16) || bf16.HeadSizeTile != fp32.HeadSizeTile
                || bf16.Parameters.Length != fp32.Parameters.Length) continue;
            bool twins = fp32.Parameters.Zip(bf16.Parameters, (a, b) => a.Name == b.Name && (a.CType == b.CType || (a.CType == "float*" && b.CType == "bf16*"))).All(x => x);
            bool[] varies = fp32.Parameters.Select((p, i) => p.CType != bf16.Parameters[i].CType).ToArray();
            if (twins && varies.Any(v => v)) yield return (name, fp32.HeadSizeTile, fp32.Parameters, varies);
        }
    }

    private static string Storage((string Name, bool HeadSizeTile, ImmutableArray<KernelParameter> Parameters, bool[] Varies) pair)
    {
        var s = new StringBuilder();
        var parameters = pair.Parameters;
        string Forward(string type) => string.Join(", ", parameters.Select((p, i) => pair.Varies[i]
            ? $"{Id(p.Name)}: new global::SoftPrompt.Cuda.DeviceSpan<{type}>({Id(p.Name)}.Address, {Id(p.Name)}.Length)"
            : $"{Id(p.Name)}: {Id(p.Name)}"));
        string declare = string.Concat(parameters.Select((p, i) => $", {(pair.Varies[i] ? "global::SoftPrompt.Cuda.DeviceSpan<TStorage>" : p.StubType)} {Id(p.Name)}"));
        string tile = pair.HeadSizeTile ? " int headSizeTile," : "", passTile = pair.HeadSizeTile ? " headSizeTile," : "";
        string varying = string.Join(", ", parameters.Where((p, i) => pair.Varies[i]).Select(p => p.Name));
        s.AppendLine($"    /// <summary>{pair.Name} (TStorage float: fp32 in memory) or {pair.Name}_bf16 (TStorage ushort: bf16 in memory) for {varying}.</summary>");
        s.AppendLine($"    public static void {pair.Name}<TStorage>(global::SoftPrompt.Cuda.IComputeDevice device,{tile} global::SoftPrompt.Cuda.Kernels.LaunchShape shape{declare}) where TStorage : unmanaged");
        s.AppendLine("    {");
        s.AppendLine($"        if (typeof(TStorage) == typeof(float)) {pair.Name}(device,{passTile} shape, {Forward("float")});");
        s.AppendLine($"        else if (typeof(TStorage) == typeof(ushort)) {pair.Name}_bf16(device,{passTile} shape, {Forward("ushort")});");
        s.AppendLine($"        else throw new global::System.ArgumentException($\"{pair.Name}: the storage type {{typeof(TStorage).Name}} is neither float (fp32) nor ushort (bf16).\", nameof(TStorage));");
        s.AppendLine("    }");
        return s.ToString();
    }

    private static string Declare(ImmutableArray<KernelParameter> parameters) =>
        string.Concat(parameters.Select(p => $", {p.StubType} {Id(p.Name)}"));

    private static IEnumerable<string> Describe(KernelDeclaration kernel) => kernel.Parameters.Select(p => p.CType + " " + p.Name);

    /// <summary>Kernels named <c>family_hsNN</c> that share one parameter list, by family, ordered by tile.</summary>
    private static Dictionary<string, IReadOnlyList<(int Tile, KernelDeclaration Kernel)>> Families(IReadOnlyList<KernelDeclaration> kernels)
    {
        var families = new Dictionary<string, IReadOnlyList<(int Tile, KernelDeclaration Kernel)>>(StringComparer.Ordinal);
        var byFamily = kernels
            .Select(k => (Match: Regex.Match(k.Name, @"^(\w+)_hs(\d+)$"), Kernel: k))
            .Where(x => x.Match.Success)
            .GroupBy(x => x.Match.Groups[1].Value, StringComparer.Ordinal);
        foreach (var group in byFamily)
        {
            var members = group.Select(x => (Tile: int.Parse(x.Match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), x.Kernel))
                .OrderBy(m => m.Tile).ToList();
            bool sameParameters = members.All(m => Describe(m.Kernel).SequenceEqual(Describe(members[0].Kernel)));
            bool nameIsFree = kernels.All(k => k.Name != group.Key);
            if (members.Count > 1 && sameParameters && nameIsFree) families[group.Key] = members;
        }
        return families;
    }
}
