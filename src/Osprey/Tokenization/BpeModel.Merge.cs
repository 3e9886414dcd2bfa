namespace Osprey.Tokenization;

// The merge itself: a word's initial symbols (with unknown and byte-fallback handling), then merges lowest rank first.
internal sealed partial class BpeModel
{
    private (int[] Ids, (int Start, int End)[] Spans) Compute(string word)
    {
        if (_ignoreMerges && _vocabLookup.TryGetValue(word, out var whole)) return ([whole], [(0, word.Length)]);
        var symbols = InitialSymbols(word);
        MergeAll(symbols);
        var count = 0;
        foreach (var sym in symbols) if (sym.Length > 0) count++;
        var ids = new int[count];
        var spans = new (int, int)[count];
        var k = 0;
        for (var i = symbols.Count == 0 ? -1 : 0; i != -1; i = symbols[i].Next)
        {
            if (symbols[i].Length == 0) continue;
            ids[k] = symbols[i].Id;
            spans[k++] = (symbols[i].Start, symbols[i].Start + symbols[i].Length);
        }
        return (ids, spans);
    }

    private struct Symbol
    {
        public int Id;
        public int Start;
        public int Length;
        public int Prev;
        public int Next;
    }

    private void FlushUnk(List<Symbol> symbols, ref int pendingStart, int pendingLength)
    {
        if (pendingStart < 0) return;
        symbols.Add(new Symbol { Id = _unkId!.Value, Start = pendingStart, Length = pendingLength });
        pendingStart = -1;
    }

    private List<Symbol> InitialSymbols(string word)
    {
        var symbols = new List<Symbol>(word.Length);
        int pendingUnkStart = -1, pendingUnkLength = 0;

        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < word.Length;)
        {
            var length = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var id = -1;
            var isFirst = i == 0;
            var isLast = i + length == word.Length;
            if (length == 1 && _singleChar[word[i]] >= 0)
            {
                id = _singleChar[word[i]];
            }
            else
            {
                var piece = word.AsSpan(i, length);
                if (_prefix is null && _suffix is null)
                {
                    if (_vocabLookup.TryGetValue(piece, out var found)) id = found;
                }
                else
                {
                    var s = string.Concat(!isFirst && _prefix is not null ? _prefix : "", piece, isLast && _suffix is not null ? _suffix : "");
                    if (_vocab.TryGetValue(s, out var found)) id = found;
                }
            }
            if (id >= 0)
            {
                FlushUnk(symbols, ref pendingUnkStart, pendingUnkLength);
                symbols.Add(new Symbol { Id = id, Start = i, Length = length });
            }
            else
            {
                var handled = false;
                if (_byteFallbackEnabled)
                {
                    var n = System.Text.Encoding.UTF8.GetBytes(word.AsSpan(i, length), utf8);
                    var all = true;
                    for (var k = 0; k < n; k++) all &= _byteFallback[utf8[k]] >= 0;
                    if (all)
                    {
                        FlushUnk(symbols, ref pendingUnkStart, pendingUnkLength);
                        // Every byte token spans the whole char: a byte cannot be located inside a UTF-16 char.
                        for (var k = 0; k < n; k++) symbols.Add(new Symbol { Id = _byteFallback[utf8[k]], Start = i, Length = length });
                        handled = true;
                    }
                }
                if (!handled && _unkId is not null)
                {
                    if (pendingUnkStart >= 0 && _fuseUnk)
                    {
                        pendingUnkLength = i + length - pendingUnkStart;
                    }
                    else
                    {
                        FlushUnk(symbols, ref pendingUnkStart, pendingUnkLength);
                        pendingUnkStart = i;
                        pendingUnkLength = length;
                    }
                }
            }
            i += length;
        }
        FlushUnk(symbols, ref pendingUnkStart, pendingUnkLength);
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(symbols);
        for (var k = 0; k < span.Length; k++)
        {
            span[k].Prev = k - 1;
            span[k].Next = k + 1 < span.Length ? k + 1 : -1;
        }
        return symbols;
    }

    private void MergeAll(List<Symbol> list)
    {
        if (list.Count < 2) return;
        if (list.Count <= 48)
        {
            MergeShort(list);
            return;
        }
        var symbols = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list);
        var queue = new PriorityQueue<(int Pos, int NewId), long>(symbols.Length);
        for (var i = 0; i + 1 < symbols.Length; i++)
        {
            if (_merges.TryGetValue(Key(symbols[i].Id, symbols[i + 1].Id), out var m))
                queue.Enqueue((i, m.NewId), Priority(m.Rank, i));
        }
        while (queue.TryDequeue(out var top, out _))
        {
            ref var left = ref symbols[top.Pos];
            if (left.Length == 0 || left.Next == -1) continue;
            ref var right = ref symbols[left.Next];
            if (!_merges.TryGetValue(Key(left.Id, right.Id), out var current) || current.NewId != top.NewId) continue;
            left.Id = top.NewId;
            left.Length = right.Start + right.Length - left.Start;
            var rightNext = right.Next;
            right.Length = 0;
            left.Next = rightNext;
            if (rightNext != -1) symbols[rightNext].Prev = top.Pos;
            if (left.Prev != -1 && _merges.TryGetValue(Key(symbols[left.Prev].Id, left.Id), out var mp))
                queue.Enqueue((left.Prev, mp.NewId), Priority(mp.Rank, left.Prev));
            if (left.Next != -1 && _merges.TryGetValue(Key(left.Id, symbols[left.Next].Id), out var mn))
                queue.Enqueue((top.Pos, mn.NewId), Priority(mn.Rank, top.Pos));
        }
    }

    /// <summary>
    /// Short words: repeatedly merge the adjacent pair with the lowest (rank, position), which is exactly the order
    /// the priority queue yields, without its allocations.
    /// </summary>
    private void MergeShort(List<Symbol> list)
    {
        var n = list.Count;
        Span<int> idsBuf = stackalloc int[n];
        Span<int> starts = stackalloc int[n];
        Span<int> ends = stackalloc int[n];
        Span<long> ranks = stackalloc long[n];
        for (var i = 0; i < n; i++)
        {
            idsBuf[i] = list[i].Id;
            starts[i] = list[i].Start;
            ends[i] = list[i].Start + list[i].Length;
        }
        for (var i = 0; i + 1 < n; i++) ranks[i] = PairRank(idsBuf[i], idsBuf[i + 1]);
        while (n > 1)
        {
            var best = -1;
            var bestRank = long.MaxValue;
            for (var i = 0; i + 1 < n; i++)
            {
                if (ranks[i] < bestRank)
                {
                    bestRank = ranks[i];
                    best = i;
                }
            }
            if (best < 0) break;
            idsBuf[best] = _merges[Key(idsBuf[best], idsBuf[best + 1])].NewId;
            ends[best] = ends[best + 1];
            for (var i = best + 1; i + 1 < n; i++)
            {
                idsBuf[i] = idsBuf[i + 1];
                starts[i] = starts[i + 1];
                ends[i] = ends[i + 1];
                ranks[i] = ranks[i + 1];
            }
            n--;
            if (best > 0) ranks[best - 1] = PairRank(idsBuf[best - 1], idsBuf[best]);
            ranks[best] = best + 1 < n ? PairRank(idsBuf[best], idsBuf[best + 1]) : long.MaxValue;
        }
        list.Clear();
        for (var i = 0; i < n; i++)
        {
            list.Add(new Symbol { Id = idsBuf[i], Start = starts[i], Length = ends[i] - starts[i], Prev = i - 1, Next = i + 1 < n ? i + 1 : -1 });
        }
    }

    private long PairRank(int a, int b) => _merges.TryGetValue(Key(a, b), out var m) ? m.Rank : long.MaxValue;

    private static long Priority(int rank, int pos) => ((long)rank << 32) | (uint)pos;
}
