using SoftPrompt.Cuda.Emulation;
using SoftPrompt.Engines;

namespace SoftPrompt.Tests.Tuning;

/// <summary>
/// A device decoding session's steps allocate nothing, on the host or the device, whichever the model family
/// (<see cref="DeviceCachedDecodingTests"/>, <see cref="DeviceT5CachedDecodingTests"/>).
/// </summary>
internal static class DecodingAllocationChecks
{
    /// <summary>
    /// Two slots of <paramref name="session"/> warmed up, then two decoding steps and two steps where slot 1 begins a new
    /// input (<paramref name="restartSteps"/> names what that step does besides decoding slot 0's next token), each measured.
    /// </summary>
    public static void StepsAllocateNothingOnTheHostOrTheDevice(IDecodingSession session, EmulatedDevice device, string restartSteps)
    {
        var tokens = new int[2];
        int[] both = [0, 1], input = [3, 4, 5];
        void Decode()
        {
            session.NextTokens(both, tokens);
            session.Append(0, tokens[0]);
            session.Append(1, tokens[1]);
        }
        void Restart()
        {
            session.Begin(1, 1, input);
            Decode();
        }
        session.Begin(0, 0, [1, 2]);
        Restart();
        Decode();
        foreach (var (name, round) in new (string, Action)[] { ("decoding steps", Decode), (restartSteps, Restart) })
        {
            long deviceBytes = device.AllocatedBytes, before = GC.GetAllocatedBytesForCurrentThread();
            round();
            round();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(allocated, Is.Zero, $"managed bytes allocated by two {name}");
            Assert.That(device.AllocatedBytes, Is.EqualTo(deviceBytes), $"device bytes allocated by two {name}");
        }
    }
}
