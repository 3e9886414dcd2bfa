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
internal sealed partial class Renderer
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
}
