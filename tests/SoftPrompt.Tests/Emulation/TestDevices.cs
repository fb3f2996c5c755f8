using System.Reflection;
using SoftPrompt.Cuda;
using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Cuda.Kernels;

namespace SoftPrompt.Tests.Emulation;

/// <summary>The devices the kernel self-tests run on: every fixture is instantiated once per kind.</summary>
public enum DeviceKind
{
    /// <summary>The CPU kernel emulator (kernels/build/emu); skipped when it was not built.</summary>
    Emulated,
    /// <summary>GPU 0 through CudaDevice and the embedded PTX; skipped without a GPU, PTX or CudaDevice.</summary>
    Gpu,
}

internal static class TestDevices
{
    public static IComputeDevice Open(DeviceKind kind) => kind switch
    {
        DeviceKind.Emulated => OpenEmulated(),
        DeviceKind.Gpu => OpenGpu(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static EmulatedDevice OpenEmulated()
    {
        if (!EmulatedDevice.IsAvailable(out string? reason)) Assert.Ignore(reason ?? EmulatorLibrary.NotBuiltMessage);
        return new EmulatedDevice();
    }

    // TODO(lead): once the cudahost branch (SoftPrompt.Cuda.CudaDevice) is merged, replace this reflection with
    //     if (!CudaDevice.IsAvailable(out string? reason)) Assert.Ignore(reason);
    //     return CudaDevice.Open(0, EmbeddedPtx.Load);
    // It looks the class up by name so this branch builds without it.
    public static IComputeDevice OpenGpu()
    {
        Type? type = typeof(IComputeDevice).Assembly.GetType("SoftPrompt.Cuda.CudaDevice");
        if (type is null) Assert.Ignore("SoftPrompt.Cuda.CudaDevice is not in this build yet");
        if (!EmbeddedPtx.IsAvailable) Assert.Ignore(EmbeddedPtx.NotBuiltMessage);
        MethodInfo? isAvailable = type.GetMethod("IsAvailable", BindingFlags.Public | BindingFlags.Static, [typeof(string).MakeByRefType()]);
        if (isAvailable is not null)
        {
            object?[] args = [null];
            if (!(bool)isAvailable.Invoke(null, args)!) Assert.Ignore($"no usable GPU: {args[0]}");
        }
        MethodInfo? open = type.GetMethod("Open", BindingFlags.Public | BindingFlags.Static, [typeof(int), typeof(Func<string?>)]);
        if (open is null)
            throw new MissingMethodException("CudaDevice.Open(int, Func<string?>) not found: update TestDevices.OpenGpu.");
        try
        {
            return (IComputeDevice)open.Invoke(null, [0, (Func<string?>)EmbeddedPtx.Load])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }

    public static DeviceBuffer<T> Upload<T>(this IComputeDevice device, T[] data) where T : unmanaged
    {
        var buffer = device.Allocate<T>(data.Length);
        buffer.CopyFrom(data);
        return buffer;
    }

    public static T[] Download<T>(this DeviceBuffer<T> buffer) where T : unmanaged
    {
        var data = new T[buffer.Length];
        buffer.CopyTo(data);
        return data;
    }
}
