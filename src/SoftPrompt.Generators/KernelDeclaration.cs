using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Text.RegularExpressions;

namespace SoftPrompt.Generators;

/// <summary>
/// One parameter of an extern "C" kernel: its name and C type as the .cu file writes them (qualifiers dropped), and
/// the type its stub takes — a device span for a pointer, the same-sized C# scalar otherwise; null when the generator
/// has no mapping for the C type (reported as SP0003).
/// </summary>
internal sealed class KernelParameter(string name, string cType)
{
    public string Name { get; } = name;
    public string CType { get; } = cType;
    public string? StubType => StubTypes.TryGetValue(CType, out string? stub) ? stub : null;
    public bool IsPointer => CType.EndsWith("*", StringComparison.Ordinal);

    /// <summary>The C types a kernel parameter may have, for the error that names one it may not.</summary>
    public static string MappedTypes => string.Join(", ", StubTypes.Keys);

    // bf16/fp16 are common.cuh's 2-byte storage structs: the host sees their bits.
    private static readonly Dictionary<string, string> StubTypes = new(StringComparer.Ordinal)
    {
        ["float*"] = "global::SoftPrompt.Cuda.DeviceSpan<float>",
        ["int*"] = "global::SoftPrompt.Cuda.DeviceSpan<int>",
        ["unsigned*"] = "global::SoftPrompt.Cuda.DeviceSpan<uint>",
        ["unsigned int*"] = "global::SoftPrompt.Cuda.DeviceSpan<uint>",
        ["bf16*"] = "global::SoftPrompt.Cuda.DeviceSpan<ushort>",
        ["fp16*"] = "global::SoftPrompt.Cuda.DeviceSpan<ushort>",
        ["int"] = "int",
        ["unsigned"] = "uint",
        ["unsigned int"] = "uint",
        ["long long"] = "long",
        ["float"] = "float",
    };
}

/// <summary>A line of a .cu file: its 0-based number and where it lies in the text, for diagnostics.</summary>
internal readonly struct SourceLine(int number, int start, int length)
{
    public int Number { get; } = number;
    public int Start { get; } = start;
    public int Length { get; } = length;

    public static SourceLine At(string text, int index)
    {
        int start = index == 0 ? 0 : text.LastIndexOf('\n', index - 1) + 1, number = 0;
        for (int i = 0; i < start; i++) if (text[i] == '\n') number++;
        int end = text.IndexOf('\n', start);
        return new SourceLine(number, start, (end < 0 ? text.Length : end) - start);
    }
}

/// <summary>An extern "C" __global__ kernel as its .cu file declares it, with the line of the declaration.</summary>
internal sealed class KernelDeclaration(string file, SourceLine line, string name, ImmutableArray<KernelParameter> parameters)
{
    public string File { get; } = file;
    public SourceLine Line { get; } = line;
    public string Name { get; } = name;
    public ImmutableArray<KernelParameter> Parameters { get; } = parameters;
}

/// <summary>
/// What one .cu file declares: its kernels, and the lines that start an extern "C" __global__ declaration the parser
/// could not read (kernels/build-kernels.sh refuses those too).
/// </summary>
internal sealed class KernelFile(string path, ImmutableArray<KernelDeclaration> kernels, ImmutableArray<SourceLine> unreadableLines)
{
    // The form kernels/build-kernels.sh enforces: `extern "C" __global__ void [__launch_bounds__(...)] name(` on one
    // line; the parameter list may continue over lines up to its closing parenthesis.
    private static readonly Regex Declaration = new(
        @"^[ \t]*extern[ \t]+""C""[ \t]+__global__[ \t]+void[ \t]+(?:__launch_bounds__[ \t]*\([^)\n]*\)[ \t]*)?([A-Za-z_]\w*)[ \t]*\(([^)]*)\)",
        RegexOptions.Multiline | RegexOptions.CultureInvariant);
    private static readonly Regex DeclarationStart = new(@"^[ \t]*extern[ \t]+""C""[ \t]+__global__", RegexOptions.Multiline | RegexOptions.CultureInvariant);
    private static readonly Regex Comment = new(@"//[^\n]*|/\*.*?\*/", RegexOptions.Singleline | RegexOptions.CultureInvariant);
    private static readonly Regex NamedParameter = new(@"^(.*?)([A-Za-z_]\w*)$", RegexOptions.Singleline | RegexOptions.CultureInvariant);

    public string Path { get; } = path;
    public ImmutableArray<KernelDeclaration> Kernels { get; } = kernels;
    /// <summary>Lines starting a declaration that does not have the enforced form, or has a parameter without a name.</summary>
    public ImmutableArray<SourceLine> UnreadableLines { get; } = unreadableLines;

    public static KernelFile Parse(string path, string text)
    {
        string file = System.IO.Path.GetFileName(path);
        var kernels = ImmutableArray.CreateBuilder<KernelDeclaration>();
        var read = new HashSet<int>();  // line numbers
        foreach (Match match in Declaration.Matches(text))
        {
            var line = SourceLine.At(text, match.Index);
            var parameters = ImmutableArray.CreateBuilder<KernelParameter>();
            bool readable = true;
            foreach (string raw in Comment.Replace(match.Groups[2].Value, " ").Split(','))
            {
                string words = Regex.Replace(raw, @"\s+", " ").Trim();
                if (words.Length == 0 || words == "void") continue;
                var named = NamedParameter.Match(words);
                string type = CType(named.Groups[1].Value);
                if (type.Length == 0) { readable = false; break; }
                parameters.Add(new KernelParameter(named.Groups[2].Value, type));
            }
            if (!readable) continue;
            read.Add(line.Number);
            kernels.Add(new KernelDeclaration(file, line, match.Groups[1].Value, parameters.ToImmutable()));
        }
        var unreadable = DeclarationStart.Matches(text).Cast<Match>().Select(m => SourceLine.At(text, m.Index)).Where(line => !read.Contains(line.Number));
        return new KernelFile(path, kernels.ToImmutable(), unreadable.ToImmutableArray());
    }

    /// <summary>"const float* __restrict__" → "float*": qualifiers that do not change what the host passes are dropped.</summary>
    private static string CType(string declared)
    {
        var words = declared.Replace("*", " * ").Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries)
            .Where(w => w is not ("const" or "__restrict__" or "volatile"));
        return string.Join(" ", words).Replace(" *", "*");
    }
}
