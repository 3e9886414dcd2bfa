
namespace Osprey.Tokenization.Jinja;

// Expression evaluation: names, literals, attribute and item access, calls, filters, tests and operators.
internal sealed partial class Renderer
{
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
}
