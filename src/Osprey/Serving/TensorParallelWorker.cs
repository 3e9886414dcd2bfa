using Osprey.Distributed;
using Osprey.Models;
using Osprey.Models.Blocks;
using Osprey.Runtime;
using static TorchSharp.torch;

namespace Osprey.Serving;

/// <summary>
/// What a tensor-parallel worker process (rank 1 … N − 1, started by the serving rank 0) does instead of serving: loads its
/// shard, then repeats every model step rank 0 sends (<see cref="TensorParallelStep"/>) on its own KV cache until rank 0
/// says it is done. It never samples; its forward passes stop at the hidden states.
/// </summary>
public static class TensorParallelWorker
{
    /// <summary>True in a process rank 0 started as a worker (<see cref="TensorParallelGroup.IsWorkerProcess"/>).</summary>
    public static bool IsWorkerProcess => TensorParallelGroup.IsWorkerProcess;

    /// <summary>Joins rank 0's group, loads this rank's shard of <paramref name="folder"/> and serves steps; returns the exit code.</summary>
    /// <exception cref="OspreyException">The rendezvous or the load fails, or rank 0 goes away mid-step.</exception>
    public static int Run(string folder, ModelLoadOptions load, TextWriter log)
    {
        // Ctrl-C reaches every process of the terminal's group: rank 0 stops the server and then ends the workers itself.
        using var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => c.Cancel = true);
        var runtime = TorchRuntime.Initialize(load.Device, log);
        using var group = TensorParallelGroup.Join(runtime.Device, log);
        using var model = CausalLM.Load(folder, load with { TensorParallel = group, Notice = log });
        model.SkipsLogits = true;
        Serve(model, group);
        return 0;
    }

    /// <summary>Repeats rank 0's steps on <paramref name="model"/> until it sends the end.</summary>
    internal static void Serve(CausalLM model, TensorParallelGroup group)
    {
        using var _ = no_grad();
        KvCache? pool = null;
        var device = model.Device;
        try
        {
            while (group.ReceiveStep() is { Length: > 0 } bytes)
            {
                var step = TensorParallelStep.Decode(bytes);
                using var scope = NewDisposeScope();
                switch (step.Kind)
                {
                    case TensorParallelStepKind.NewCache:
                        pool?.Dispose();
                        pool = model.NewCache(step.A, step.B);
                        break;
                    case TensorParallelStepKind.EndEngine:
                        pool?.Dispose();
                        pool = null;
                        break;
                    case TensorParallelStepKind.Decode:
                        {
                            var n = step.Ids.Length;
                            model.DecodeSlots(tensor(step.Ids, [n, 1], device: device), tensor(step.Positions, [n], device: device), Pool(pool), step.A, step.B != 0);
                            break;
                        }
                    case TensorParallelStepKind.Prefill:
                        {
                            var k = step.Positions.Length;
                            using var rows = Pool(pool).Rows(step.A, k);
                            model.PrefillLast(tensor(step.Ids, [k, step.B], device: device), rows, tensor(step.Positions, device: device));
                            break;
                        }
                    case TensorParallelStepKind.Chunk:
                        {
                            using var row = Pool(pool).Row(step.A, step.B);
                            model.Forward(tensor(step.Ids, [1, step.Ids.Length], device: device), null, null, row, lastOnly: true);
                            break;
                        }
                    case TensorParallelStepKind.CopyRow:
                        Pool(pool).CopyRow(step.A, step.B, step.C);
                        break;
                    case TensorParallelStepKind.Hidden:
                        model.HiddenStates(tensor(step.Ids, [1, step.Ids.Length], device: device));
                        break;
                    default:
                        throw new OspreyException($"rank {group.Rank} got an unknown step ({step.Kind}) from rank 0; every rank must run the same osprey build.");
                }
            }
        }
        finally
        {
            pool?.Dispose();
        }
    }

    static KvCache Pool(KvCache? pool) => pool ?? throw new OspreyException("rank 0 sent a step before the engine's KV cache; every rank must run the same osprey build.");
}
