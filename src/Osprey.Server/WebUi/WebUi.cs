using Microsoft.AspNetCore.Builder;
using Osprey.Serving;

namespace Osprey.Server;

/// <summary>The chat web page of <c>osprey app</c> (skeleton; filled in by the web app work).</summary>
public static class WebUi
{
    /// <summary>Maps the page and its assets at / on <paramref name="app"/>.</summary>
    public static void Map(WebApplication app, ServedModel model)
    {
        _ = app;
        _ = model;
    }
}
