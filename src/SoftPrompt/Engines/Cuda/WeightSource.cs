using SoftPrompt.Checkpoints;
using SoftPrompt.Cuda;

namespace SoftPrompt.Engines;

/// <summary>
/// Where a device-weight class (<see cref="Gpt2DeviceWeights"/>, <see cref="LlamaDeviceWeights"/>, <see cref="T5DeviceWeights"/>)
/// takes each frozen tensor from, so weights built in host memory and checkpoints read tensor by tensor share one upload
/// path. Each tensor is declared with both of its names: the field of the host weights <typeparamref name="TWeights"/>
/// that holds it, and the checkpoint's name for it (without the checkpoint's prefix) with the shape config.json implies.
/// </summary>
internal abstract class WeightSource<TWeights>
{
    public abstract TensorValues? Tensor(Func<TWeights, float[]?> host, string checkpointName, params long[] shape);
}

/// <summary>Weights already in host memory: random or built in memory (tests, bench shapes).</summary>
internal sealed class HostWeightSource<TWeights>(TWeights weights) : WeightSource<TWeights>
{
    public override TensorValues? Tensor(Func<TWeights, float[]?> host, string checkpointName, params long[] shape) => TensorValues.Of(host(weights));
}

/// <summary>A checkpoint streamed into device tensors from its mapping (<see cref="CheckedCheckpoint.Stream"/>): no host copy of the model.</summary>
internal sealed class CheckpointWeightSource<TWeights>(CheckedCheckpoint checkpoint) : WeightSource<TWeights>
{
    public override TensorValues? Tensor(Func<TWeights, float[]?> host, string checkpointName, params long[] shape) => checkpoint.Stream(checkpointName, shape);
}
