namespace Osprey.Hub.Download;

/// <summary>The kind of a hub repository; it decides the URL prefixes and the cache folder prefix.</summary>
public enum HubRepoType
{
    /// <summary>A model repository (<c>models--org--name</c> in the cache, no URL prefix).</summary>
    Model,

    /// <summary>A dataset repository (<c>datasets--org--name</c> in the cache, <c>/datasets/</c> in URLs).</summary>
    Dataset,
}
