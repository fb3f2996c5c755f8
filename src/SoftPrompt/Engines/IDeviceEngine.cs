using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>An engine that computes on an <see cref="IComputeDevice"/> (a GPU or the kernel emulator): what reports of speed and memory ask it.</summary>
public interface IDeviceEngine : IPromptEngine
{
    IComputeDevice Device { get; }
}
