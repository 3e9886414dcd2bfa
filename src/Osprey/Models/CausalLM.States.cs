namespace Osprey.Models;

public sealed partial class CausalLM
{
    readonly Dictionary<Type, object> _states = [];

    /// <summary>
    /// The <typeparamref name="T"/> kept with this model by code outside it (a tuner's record of the adapters it put on
    /// the layers), created on first use. The model does not look inside; it disposes the state with itself.
    /// </summary>
    internal T State<T>() where T : class, new()
    {
        if (_states.TryGetValue(typeof(T), out var state)) return (T)state;
        var created = new T();
        _states[typeof(T)] = created;
        return created;
    }

    /// <summary>The <typeparamref name="T"/> kept with this model, or null when none was created (see <see cref="State{T}"/>).</summary>
    internal T? FindState<T>() where T : class => _states.TryGetValue(typeof(T), out var state) ? (T)state : null;

    void DisposeStates()
    {
        foreach (var state in _states.Values) (state as IDisposable)?.Dispose();
        _states.Clear();
    }
}
