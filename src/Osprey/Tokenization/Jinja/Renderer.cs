using System.Text;

namespace Osprey.Tokenization.Jinja;

/// <summary>The special 'loop' variable inside a for loop.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items)
{
    public IReadOnlyList<object?> Items { get; } = items;

    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 < Items.Count - 1 ? Items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new BuiltinFunction("cycle", (_, args, _) =>
            args.Count == 0 ? throw new RenderError("no items for cycling given") : args[Index0 % args.Count]),
        _ => new Undefined($"'LoopContext object' has no attribute '{name}'"),
    };
}

internal sealed class Macro(MacroStmt definition, Scope closure) : ICallable
{
    public object? Call(Renderer renderer, List<object?> args, Dictionary<string, object?> kwargs) =>
        renderer.CallMacro(definition, closure, args, kwargs);
}

internal sealed class Scope(Scope? parent)
{
    public Scope? Parent { get; } = parent;

    public Dictionary<string, object?> Vars { get; } = [];

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
        {
            if (s.Vars.TryGetValue(name, out value)) return true;
        }
        value = null;
        return false;
    }
}

/// <summary>Walks the syntax tree and writes the output, with Python semantics for every value operation.</summary>
internal sealed class Renderer
{
    private enum Flow { Normal, Break, Continue }

    private const int MaxMacroDepth = 200;

    private readonly Scope _root;
    private int _macroDepth;
    private int _line;
    private int _col;

    public Renderer(IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Scope(null);
        foreach (var (name, fn) in Globals.Create()) globals.Vars[name] = fn;
        _root = new Scope(globals);
        foreach (var (k, v) in variables) _root.Vars[k] = Py.FromExternal(v);
    }

    public string Render(List<Stmt> body)
    {
        var sb = new StringBuilder();
        try
        {
            Exec(body, _root, sb);
        }
        catch (TemplateRaised e)
        {
            throw new JinjaException(e.Message, e);
        }
        catch (RenderError e)
        {
            throw new JinjaException($"Template error at line {_line}, column {_col}: {e.Message}.", e);
        }
        catch (Exception e) when (e is not JinjaException and not OutOfMemoryException)
        {
            // A .NET failure inside a value operation is still the template's problem: report where it happened.
            throw new JinjaException($"Template error at line {_line}, column {_col}: {e.Message}", e);
        }
        return sb.ToString();
    }

    private void At(Node n)
    {
        _line = n.Line;
        _col = n.Col;
    }

    private Flow Exec(List<Stmt> body, Scope scope, StringBuilder sb)
    {
        foreach (var stmt in body)
        {
            var flow = Exec(stmt, scope, sb);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Stmt stmt, Scope scope, StringBuilder sb)
    {
        At(stmt);
        switch (stmt)
        {
            case TextStmt t:
                sb.Append(t.Text);
                return Flow.Normal;
            case OutputStmt o:
                sb.Append(Py.Str(Eval(o.Value, scope)));
                return Flow.Normal;
            case IfStmt i:
                foreach (var (condition, branch) in i.Branches)
                {
                    if (Py.Truthy(Eval(condition, scope))) return Exec(branch, scope, sb);
                }
                return i.Else is null ? Flow.Normal : Exec(i.Else, scope, sb);
            case ForStmt f:
                return ExecFor(f, scope, sb);
            case SetStmt s:
                Assign(s.Target, Eval(s.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt b:
            {
                var inner = new StringBuilder();
                Exec(b.Body, scope, inner);
                object? value = inner.ToString();
                foreach (var (name, args) in b.Filters) value = ApplyFilter(name, value, args, scope);
                Assign(b.Target, value, scope);
                return Flow.Normal;
            }
            case FilterBlockStmt fb:
            {
                var inner = new StringBuilder();
                Exec(fb.Body, scope, inner);
                object? value = inner.ToString();
                foreach (var (name, args) in fb.Filters) value = ApplyFilter(name, value, args, scope);
                sb.Append(Py.Str(value));
                return Flow.Normal;
            }
            case MacroStmt m:
                scope.Vars[m.Name] = new Macro(m, scope);
                return Flow.Normal;
            case WithStmt w:
            {
                // The values are computed in the enclosing scope; the names exist only inside the block.
                var values = w.Assignments.Select(a => Eval(a.Value, scope)).ToList();
                var inner = new Scope(scope);
                for (var i = 0; i < values.Count; i++) inner.Vars[w.Assignments[i].Name] = values[i];
                return Exec(w.Body, inner, sb);
            }
            case BlockStmt blk:
                return Exec(blk.Body, scope, sb);
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
            default:
                throw new RenderError($"unsupported statement {stmt.GetType().Name}");
        }
    }

    private Flow ExecFor(ForStmt f, Scope scope, StringBuilder sb)
    {
        var source = Eval(f.Iterable, scope);
        var items = new List<object?>();
        foreach (var item in Py.Iterate(source))
        {
            if (f.Filter is not null)
            {
                var filterScope = new Scope(scope);
                Assign(f.Target, item, filterScope);
                if (!Py.Truthy(Eval(f.Filter, filterScope))) continue;
            }
            items.Add(item);
        }
        var loop = new LoopContext(items);
        for (var i = 0; i < items.Count; i++)
        {
            loop.Index0 = i;
            // Each iteration gets its own scope: assignments inside a loop do not leak out of it (Jinja2 scoping).
            var inner = new Scope(scope);
            inner.Vars["loop"] = loop;
            Assign(f.Target, items[i], inner);
            var flow = Exec(f.Body, inner, sb);
            if (flow == Flow.Break) break;
        }
        if (items.Count == 0 && f.Else is not null) return Exec(f.Else, scope, sb);
        return Flow.Normal;
    }

    private void Assign(Target target, object? value, Scope scope)
    {
        if (target.Attribute is not null)
        {
            if (!scope.TryGet(target.Names[0], out var obj) || obj is not Namespace ns)
            {
                throw new RenderError($"cannot assign attribute '{target.Attribute}' on '{target.Names[0]}': it is not a namespace()");
            }
            ns.Attributes[target.Attribute] = value;
            return;
        }
        if (!target.IsTuple)
        {
            scope.Vars[target.Names[0]] = value;
            return;
        }
        var parts = Py.Iterate(value).ToList();
        if (parts.Count != target.Names.Count)
        {
            throw new RenderError(parts.Count > target.Names.Count
                ? $"too many values to unpack (expected {target.Names.Count})"
                : $"not enough values to unpack (expected {target.Names.Count}, got {parts.Count})");
        }
        for (var i = 0; i < parts.Count; i++) scope.Vars[target.Names[i]] = parts[i];
    }

    public object? CallMacro(MacroStmt m, Scope closure, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var scope = new Scope(closure);
        if (args.Count > m.Params.Count) throw new RenderError($"macro '{m.Name}' takes not more than {m.Params.Count} argument(s)");
        for (var i = 0; i < m.Params.Count; i++)
        {
            var (name, def) = m.Params[i];
            if (i < args.Count) scope.Vars[name] = args[i];
            else if (kwargs.Remove(name, out var kv)) scope.Vars[name] = kv;
            else scope.Vars[name] = def is null ? new Undefined($"parameter '{name}' was not provided") : Eval(def, scope);
        }
        if (kwargs.Count > 0) throw new RenderError($"macro '{m.Name}' takes no keyword argument '{kwargs.Keys.First()}'");
        // Runaway recursion must end as a template error, not a stack overflow of the host process.
        if (++_macroDepth > MaxMacroDepth) throw new RenderError($"macro '{m.Name}' recursed more than {MaxMacroDepth} levels deep");
        var sb = new StringBuilder();
        var line = _line;
        var col = _col;
        Exec(m.Body, scope, sb);
        _macroDepth--;
        _line = line;
        _col = col;
        return sb.ToString();
    }

    public object? Eval(Expr expr, Scope scope)
    {
        At(expr);
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var v) ? v : new Undefined($"'{n.Name}' is undefined");
            case ListExpr l:
            {
                var items = l.Items.Select(i => Eval(i, scope)).ToList();
                return l.IsTuple ? items.ToArray() : items;
            }
            case DictExpr d:
            {
                var dict = Py.NewDict();
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope) ?? throw new RenderError("None keys are not supported");
                    dict[key] = Eval(val, scope);
                }
                return dict;
            }
            case AttrExpr a:
            {
                var target = Eval(a.Target, scope);
                At(a);
                return GetAttr(target, a.Name);
            }
            case ItemExpr i:
            {
                var target = Eval(i.Target, scope);
                if (i.Key is SliceExpr s)
                {
                    var start = s.Start is null ? null : Eval(s.Start, scope);
                    var stop = s.Stop is null ? null : Eval(s.Stop, scope);
                    var step = s.Step is null ? null : Eval(s.Step, scope);
                    At(i);
                    return Slice(target, start, stop, step);
                }
                var key = Eval(i.Key, scope);
                At(i);
                return GetItem(target, key);
            }
            case CallExpr call:
            {
                var fn = Eval(call.Target, scope);
                var (args, kwargs) = EvalArgs(call.Args, scope);
                At(call);
                if (fn is ICallable callable) return callable.Call(this, args, kwargs);
                if (fn is Undefined u) throw new RenderError(u.Hint);
                throw new RenderError($"'{Py.TypeName(fn)}' object is not callable");
            }
            case FilterExpr f:
                return ApplyFilter(f.Name, Eval(f.Target, scope), f.Args, scope);
            case TestExpr t:
            {
                var value = Eval(t.Target, scope);
                var (args, kwargs) = EvalArgs(t.Args, scope);
                At(t);
                return BuiltinTests.Run(t.Name, value, args, kwargs);
            }
            case UnaryExpr u:
            {
                var value = Eval(u.Operand, scope);
                At(u);
                return u.Op switch
                {
                    "not" => !Py.Truthy(value),
                    "-" => value switch
                    {
                        long l => (object)(-l),
                        double dd => -dd,
                        bool b => b ? -1L : 0L,
                        _ => throw new RenderError($"bad operand type for unary -: '{Py.TypeName(value)}'"),
                    },
                    _ => Py.IsNumber(value) ? (value is bool b2 ? (object)(b2 ? 1L : 0L) : value) : throw new RenderError($"bad operand type for unary +: '{Py.TypeName(value)}'"),
                };
            }
            case BinaryExpr b:
            {
                var left = Eval(b.Left, scope);
                if (b.Op == "and") return Py.Truthy(left) ? Eval(b.Right, scope) : left;
                if (b.Op == "or") return Py.Truthy(left) ? left : Eval(b.Right, scope);
                var right = Eval(b.Right, scope);
                At(b);
                return Arithmetic.Binary(b.Op, left, right);
            }
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, rightExpr) in c.Rest)
                {
                    var right = Eval(rightExpr, scope);
                    At(c);
                    var ok = op switch
                    {
                        "==" => Py.Eq(left, right),
                        "!=" => !Py.Eq(left, right),
                        "<" => Py.Compare(left, right, op) < 0,
                        ">" => Py.Compare(left, right, op) > 0,
                        "<=" => Py.Compare(left, right, op) <= 0,
                        ">=" => Py.Compare(left, right, op) >= 0,
                        "in" => Py.Contains(right, left),
                        _ => !Py.Contains(right, left),
                    };
                    if (!ok) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                if (Py.Truthy(Eval(c.Condition, scope))) return Eval(c.Then, scope);
                return c.Else is null ? new Undefined("the inline if had no else") : Eval(c.Else, scope);
            case ConcatExpr c:
                return string.Concat(c.Parts.Select(p => Py.Str(Eval(p, scope))));
            default:
                throw new RenderError($"unsupported expression {expr.GetType().Name}");
        }
    }

    private (List<object?> Args, Dictionary<string, object?> Kwargs) EvalArgs(Args args, Scope scope)
    {
        var positional = args.Positional.Select(a => Eval(a, scope)).ToList();
        var named = new Dictionary<string, object?>();
        foreach (var (name, value) in args.Named) named[name] = Eval(value, scope);
        return (positional, named);
    }

    private object? ApplyFilter(string name, object? value, Args args, Scope scope)
    {
        var (positional, named) = EvalArgs(args, scope);
        return Filters.Apply(this, name, value, positional, named);
    }

    /// <summary>Jinja2's getattr: an attribute (method) of the value first, then its item of that name.</summary>
    public static object? GetAttr(object? target, string name)
    {
        switch (target)
        {
            case Undefined u:
                throw new RenderError(u.Hint);
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var v) ? v : new Undefined($"'Namespace object' has no attribute '{name}'");
            case LoopContext loop:
                return loop.Get(name);
            case null:
                return new Undefined($"'None' has no attribute '{name}'");
        }
        if (Methods.Has(target, name)) return new BoundMethod(target, name);
        if (target is Dictionary<object, object?> d && d.TryGetValue(name, out var item)) return item;
        return new Undefined($"'{Py.TypeName(target)} object' has no attribute '{name}'");
    }

    /// <summary>Jinja2's getitem: the item first, then (for a string key) the attribute of that name.</summary>
    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Undefined u:
                throw new RenderError(u.Hint);
            case Dictionary<object, object?> d:
                if (key is not null && d.TryGetValue(key, out var v)) return v;
                break;
            case List<object?> or object?[] when Py.IsInt(key):
            {
                var list = Py.AsList(target);
                var i = Py.ToLong(key);
                if (i < 0) i += list.Count;
                if (i >= 0 && i < list.Count) return list[(int)i];
                return new Undefined($"'{Py.TypeName(target)} object' has no element {Py.Str(key)}");
            }
            case string s when Py.IsInt(key):
            {
                var runes = s.EnumerateRunes().ToList();
                var i = Py.ToLong(key);
                if (i < 0) i += runes.Count;
                if (i >= 0 && i < runes.Count) return runes[(int)i].ToString();
                return new Undefined($"'str object' has no element {Py.Str(key)}");
            }
        }
        if (key is string name && target is not null) return GetAttr(target, name);
        return new Undefined($"'{Py.TypeName(target)} object' has no element {Py.Repr(key)}");
    }

    private static object? Slice(object? target, object? start, object? stop, object? step)
    {
        var stepValue = step is null ? 1 : Py.ToLong(step);
        if (stepValue == 0) throw new RenderError("slice step cannot be zero");
        List<object?> items = target switch
        {
            string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
            List<object?> or object?[] => Py.AsList(target).ToList(),
            Undefined u => throw new RenderError(u.Hint),
            _ => throw new RenderError($"'{Py.TypeName(target)}' object is not subscriptable"),
        };
        long n = items.Count;
        long Clamp(object? v, long dflt, bool isStart)
        {
            if (v is null) return dflt;
            var i = Py.ToLong(v);
            if (i < 0) i += n;
            return stepValue > 0 ? Math.Clamp(i, 0, n) : Math.Clamp(i, -1, n - 1);
        }
        var lo = Clamp(start, stepValue > 0 ? 0 : n - 1, true);
        var hi = Clamp(stop, stepValue > 0 ? n : -1, false);
        var result = new List<object?>();
        if (stepValue > 0)
        {
            for (var i = lo; i < hi; i += stepValue) result.Add(items[(int)i]);
        }
        else
        {
            for (var i = lo; i > hi; i += stepValue) result.Add(items[(int)i]);
        }
        return target switch
        {
            string => string.Concat(result.Select(r => (string)r!)),
            object?[] => result.ToArray(),
            _ => result,
        };
    }
}
