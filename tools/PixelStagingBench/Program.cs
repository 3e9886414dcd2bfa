// A batch of four rows with one 448x448 and one 1024x768 picture each, as tools/vl_bench.sh trains on: Qwen2-VL's
// patches of 1176 floats (3 x 2 x 14 x 14); 448x448 is 32x32 patches, 1024x768 is resized to 1036x756 = 74x54 patches.
// Per round: SHA-256 and XXH3-128 of every picture's pixel values; the old gather (a new float[] and a tensor made
// from it) and PixelStaging.Stage (the reused buffer), both ending as a bfloat16 CPU tensor (the model's dtype). Usage: dotnet run -c Release
// --project tools/PixelStagingBench [ROUNDS]
using System.Diagnostics;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Osprey.Images;
using static TorchSharp.torch;

Osprey.Runtime.TorchRuntime.Initialize();
var rounds = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 5;
const int Dim = 1176;
var rng = new Random(1);
float[] Picture(int patches)
{
    var a = new float[patches * Dim];
    for (var i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble();
    return a;
}
var pictures = Enumerable.Range(0, 4).SelectMany(_ => new[] { Picture(32 * 32), Picture(74 * 54) }).ToList();
long total = pictures.Sum(p => (long)p.Length);
Console.WriteLine($"{pictures.Count} pictures, {total * 4 / 1e6:F1} MB of float32 pixel values; {Environment.ProcessorCount} cores");
Console.WriteLine($"{"round",5} {"sha256_ms",10} {"xxh3_ms",8} {"new_array_ms",13} {"staging_ms",11}");
using var staging = new PixelStaging();
for (var r = 1; r <= rounds; r++)
{
    var clock = Stopwatch.StartNew();
    foreach (var p in pictures) SHA256.HashData(MemoryMarshal.AsBytes(p.AsSpan()));
    var sha = clock.Elapsed.TotalMilliseconds;
    clock.Restart();
    foreach (var p in pictures) XxHash128.Hash(MemoryMarshal.AsBytes(p.AsSpan()));
    var xxh = clock.Elapsed.TotalMilliseconds;
    clock.Restart();
    var all = new float[total];
    long o = 0;
    foreach (var p in pictures)
    {
        Array.Copy(p, 0, all, o, p.Length);
        o += p.Length;
    }
    using (var t = tensor(all, [total / Dim, Dim], dtype: ScalarType.Float32))
    using (var b = t.to_type(ScalarType.BFloat16)) { }
    var fresh = clock.Elapsed.TotalMilliseconds;
    clock.Restart();
    using (var t = staging.Stage(pictures, [total / Dim, Dim], CPU, ScalarType.BFloat16)) { }
    var staged = clock.Elapsed.TotalMilliseconds;
    Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{r,5} {sha,10:F1} {xxh,8:F1} {fresh,13:F1} {staged,11:F1}"));
}
