namespace SoftPrompt.Cuda.Emulation;

/// <summary>
/// The CPU kernel emulator could not be loaded, or a launch on it failed (assert / __trap in a kernel, a deadlock at a
/// barrier, a wrong argument count). The message names the kernel, block and thread, and the source line when known.
/// </summary>
public sealed class EmulatorException : Exception
{
    public EmulatorException(string message) : base(message) { }
    public EmulatorException(string message, Exception inner) : base(message, inner) { }
}
