namespace SoftPrompt.Cuda.Kernels;

/// <summary>
/// How a generated <c>KernelStubs</c> method launches its kernel: the grid, the block and the dynamic shared memory.
/// Everything after it in a stub's parameter list is the kernel's own, and is passed by name.
/// </summary>
public readonly record struct LaunchShape(Dim3 Grid, Dim3 Block, uint SharedBytes = 0);
