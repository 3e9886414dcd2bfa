using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>Losses of the steps since the last log line, kept on the device until read (reading syncs the device).</summary>
internal sealed class LogWindow
{
    readonly List<(Tensor Loss, Tensor Correct, long Tokens)> _steps = [];

    /// <summary>Tokens processed since the last log line (for tokens per second).</summary>
    public long Tokens { get; set; }

    /// <summary>When the window started, in seconds since the run started.</summary>
    public double Start { get; private set; }

    /// <summary>Adds one step's summed loss, correct-token count and labelled tokens (the loss is divided by them when read).</summary>
    public void Add(Tensor loss, Tensor correct, long tokens) => _steps.Add((loss, correct, tokens));

    /// <summary>The mean of the steps' losses (each a token mean) and the token accuracy over the window.</summary>
    public (double Loss, double Accuracy) Read()
    {
        double loss = 0, correct = 0, tokens = 0;
        var counted = 0;
        foreach (var (l, c, t) in _steps)
        {
            if (t == 0) continue;
            loss += l.ToSingle() / t;
            correct += c.ToInt64();
            tokens += t;
            counted++;
        }
        return (counted == 0 ? double.NaN : loss / counted, tokens == 0 ? double.NaN : correct / tokens);
    }

    /// <summary>Frees the steps' tensors and starts a new window at <paramref name="now"/>.</summary>
    public void Reset(double now)
    {
        foreach (var (l, c, _) in _steps) { l.Dispose(); c.Dispose(); }
        _steps.Clear();
        Tokens = 0;
        Start = now;
    }
}
