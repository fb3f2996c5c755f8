namespace SoftPrompt.Engines;

/// <summary>When a device plan keeps only layer inputs and recomputes each layer in the reverse pass (<see cref="Recomputation"/>).</summary>
public static class RecomputationPolicy
{
    /// <summary>Left free beside a plan for what is allocated outside the plans (cuBLAS's and cuBLASLt's workspaces, logits read-outs, the driver's own use).</summary>
    public const long HeadroomBytes = 256L << 20;

    /// <summary>Auto recomputes when the full plan plus <see cref="HeadroomBytes"/> exceeds <paramref name="availableBytes"/>.</summary>
    public static bool Recomputes(Recomputation mode, long fullPlanBytes, long availableBytes) => mode switch
    {
        Recomputation.PerLayer => true,
        Recomputation.Off => false,
        _ => fullPlanBytes > availableBytes - HeadroomBytes,
    };
}
