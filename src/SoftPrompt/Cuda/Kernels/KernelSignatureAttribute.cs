namespace SoftPrompt.Cuda.Kernels;

/// <summary>
/// Declares, on a kernel's launcher method, the kernel's extern "C" name and its parameter list as the launcher
/// packs it into the <c>void**</c> argument array: pointers as pointer types (<c>typeof(float*)</c>,
/// <c>typeof(int*)</c>, <c>typeof(ushort*)</c> for bf16/fp16 buffers), scalars as their C# type (<c>int</c>,
/// <c>uint</c>, <c>float</c>, <c>long</c>, …), by-value structs as a blittable struct of the same size.
/// <see cref="KernelAbi"/> checks every declaration against the PTX <c>.entry</c> (count, order, byte size,
/// float vs integer) and against the emulator's kernel table, and that every kernel has exactly one declaration.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
public sealed class KernelSignatureAttribute(string kernel, params Type[] parameters) : Attribute
{
    public string Kernel { get; } = kernel;
    public IReadOnlyList<Type> Parameters { get; } = parameters;
}
