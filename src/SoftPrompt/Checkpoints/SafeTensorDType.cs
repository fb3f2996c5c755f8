namespace SoftPrompt.Checkpoints;

/// <summary>
/// Element types a safetensors header may name. Members are spelled exactly as in the file so that
/// <c>ToString()</c> is the header spelling. Only the floating-point types and I32/I64 are converted by
/// <see cref="SafeTensorFile"/>; the rest are recognised so that such files open and report them.
/// </summary>
public enum SafeTensorDType
{
    BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64,
}

public static class SafeTensorDTypeExtensions
{
    extension(SafeTensorDType dtype)
    {
        /// <summary>Bytes per element.</summary>
        public int ElementSize => dtype switch
        {
            SafeTensorDType.BOOL or SafeTensorDType.U8 or SafeTensorDType.I8
                or SafeTensorDType.F8_E4M3 or SafeTensorDType.F8_E5M2 => 1,
            SafeTensorDType.I16 or SafeTensorDType.U16 or SafeTensorDType.F16 or SafeTensorDType.BF16 => 2,
            SafeTensorDType.I32 or SafeTensorDType.U32 or SafeTensorDType.F32 => 4,
            SafeTensorDType.I64 or SafeTensorDType.U64 or SafeTensorDType.F64 => 8,
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
        };

        /// <summary>F16, BF16, F32 or F64: the types <see cref="SafeTensorFile.ReadAsFloat"/> converts.</summary>
        public bool IsConvertibleFloat =>
            dtype is SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.F32 or SafeTensorDType.F64;
    }

    /// <summary>Parses a header spelling; exact and case-sensitive, like the reference implementation.</summary>
    internal static bool TryParse(string text, out SafeTensorDType dtype)
    {
        // Enum.TryParse would also accept numbers and "F32, I64" flag lists; a header must name one member.
        foreach (var candidate in Enum.GetValues<SafeTensorDType>())
        {
            if (candidate.ToString() == text) { dtype = candidate; return true; }
        }
        dtype = default;
        return false;
    }

    internal static string KnownNames => string.Join(", ", Enum.GetNames<SafeTensorDType>());
}
