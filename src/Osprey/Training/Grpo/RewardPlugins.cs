using System.Reflection;

namespace Osprey.Training.Grpo;

/// <summary>
/// Reward functions from <c>--external_plugins</c> assemblies: every public, concrete <see cref="IRewardFunction"/> with a
/// public parameterless constructor, by its <see cref="IRewardFunction.Name"/>.
/// </summary>
internal static class RewardPlugins
{
    /// <summary>The plugins' reward functions by name.</summary>
    /// <exception cref="OspreyException">An assembly cannot be loaded, holds none, or two share a name.</exception>
    public static Dictionary<string, IRewardFunction> Load(IReadOnlyList<string> assemblies)
    {
        var found = new Dictionary<string, IRewardFunction>(StringComparer.Ordinal);
        foreach (var path in assemblies)
        {
            Assembly assembly;
            try
            {
                assembly = Assembly.LoadFrom(Path.GetFullPath(path));
            }
            catch (Exception e) when (e is BadImageFormatException or FileLoadException or FileNotFoundException)
            {
                throw new OspreyException($"--external_plugins {path} is not a loadable .NET assembly ({e.Message.TrimEnd('.')}); build it for net10.0 against Osprey.dll.", e);
            }
            var types = assembly.GetExportedTypes().Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IRewardFunction).IsAssignableFrom(t) && t.GetConstructor(Type.EmptyTypes) is not null).ToList();
            if (types.Count == 0)
                throw new OspreyException($"--external_plugins {path} has no public class implementing Osprey.Training.Grpo.IRewardFunction with a parameterless constructor.");
            foreach (var type in types)
            {
                var reward = (IRewardFunction)Activator.CreateInstance(type)!;
                if (!found.TryAdd(reward.Name, reward))
                    throw new OspreyException($"--external_plugins: two reward functions are named '{reward.Name}' ({found[reward.Name].GetType().FullName} and {type.FullName}); give them different Name values.");
            }
        }
        return found;
    }
}
