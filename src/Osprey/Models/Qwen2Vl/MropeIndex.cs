namespace Osprey.Models.Qwen2Vl;

/// <summary>
/// transformers' get_rope_index for images: text tokens count up on all three rows (temporal, height, width); an
/// image's tokens all start at the position after the preceding text and add their frame, row and column in the
/// merged grid; the text after an image continues from the largest position used plus one. Padding (keyValid 0)
/// gets position 1, as in transformers. The delta (largest position + 1 - row length) moves decode positions.
/// </summary>
internal static class MropeIndex
{
    /// <summary>Positions [3][B][T] and per-row deltas; <paramref name="grids"/> are the images in the order they
    /// appear, row after row.</summary>
    public static (long[,,] Positions, long[] Deltas) Compute(long[,] ids, bool[,]? keyValid, IReadOnlyList<(int T, int H, int W)> grids,
        int imageTokenId, int mergeSize)
    {
        int b = ids.GetLength(0), len = ids.GetLength(1);
        var pos = new long[3, b, len];
        var deltas = new long[b];
        var gi = 0;
        for (var r = 0; r < b; r++)
        {
            var cols = Enumerable.Range(0, len).Where(j => keyValid?[r, j] ?? true).ToArray();
            for (var j = 0; j < len; j++)
                if (!(keyValid?[r, j] ?? true)) for (var a = 0; a < 3; a++) pos[a, r, j] = 1;
            var row = cols.Select(j => ids[r, j]).ToArray();
            long next = 0;
            var st = 0;
            void Put(int k, long t, long h, long w)
            {
                pos[0, r, cols[k]] = t;
                pos[1, r, cols[k]] = h;
                pos[2, r, cols[k]] = w;
            }
            while (true)
            {
                var ed = Array.IndexOf(row, (long)imageTokenId, st);
                if (ed < 0) break;
                if (gi >= grids.Count)
                    throw new OspreyException($"the prompt has more image placeholders than the {grids.Count} image(s) given.");
                var (gt, gh, gw) = grids[gi++];
                int lh = gh / mergeSize, lw = gw / mergeSize;
                for (var k = st; k < ed; k++) Put(k, next + k - st, next + k - st, next + k - st);
                var start = next + (ed - st);
                var count = gt * lh * lw;
                if (ed + count > row.Length)
                    throw new OspreyException($"an image needs {count} placeholder tokens but the prompt ends after {row.Length - ed}.");
                var k2 = ed;
                for (var t = 0; t < gt; t++)
                    for (var y = 0; y < lh; y++)
                        for (var x = 0; x < lw; x++) Put(k2++, start + t, start + y, start + x);
                next = start + Math.Max(gt - 1, Math.Max(lh - 1, lw - 1)) + 1;
                st = ed + count;
            }
            for (var k = st; k < row.Length; k++) Put(k, next + k - st, next + k - st, next + k - st);
            next += row.Length - st;
            deltas[r] = next - len;
        }
        if (gi != grids.Count) throw new OspreyException($"{grids.Count} image(s) given but the prompt has placeholders for {gi}.");
        return (pos, deltas);
    }
}
