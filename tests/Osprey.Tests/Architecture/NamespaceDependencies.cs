using Mono.Cecil;
using Mono.Cecil.Cil;

namespace Osprey.Tests.Architecture;

/// <summary>
/// Which top-level namespace of the Osprey library uses which, read from the built assembly's IL with Mono.Cecil, so
/// a use is found wherever the compiler put it: base types, interfaces, generic constraints, fields, properties,
/// events, method signatures, locals, every type/member/field operand of every method body (lambdas, iterators and
/// async state machines are nested types, so they count for their outer type), catch types and attributes.
/// A namespace is named by its first segment under <c>Osprey</c> (<c>Osprey.Hub.Download</c> is <c>Hub</c>); the
/// root namespace itself is <c>Osprey</c>.
/// </summary>
internal sealed class NamespaceDependencies
{
    /// <summary>The root namespace's name in <see cref="Edges"/>.</summary>
    public const string Root = "Osprey";

    private readonly ModuleDefinition _module;
    private readonly Dictionary<(string From, string To), string> _edges = new();

    private NamespaceDependencies(ModuleDefinition module)
    {
        _module = module;
        foreach (var type in module.GetTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            var from = Segment(Outermost(type).Namespace);
            if (from is null) continue;
            Visit(type, from);
        }
    }

    /// <summary>Each namespace pair (from ≠ to) with one example use, <c>Osprey.Hub.HubResolver → Osprey.Datasets.DatasetLoader</c>.</summary>
    public IReadOnlyDictionary<(string From, string To), string> Edges => _edges;

    /// <summary>The assembly names <paramref name="assemblyPath"/> references.</summary>
    public static IReadOnlyList<string> AssemblyReferences(string assemblyPath)
    {
        using var module = ModuleDefinition.ReadModule(assemblyPath);
        return module.AssemblyReferences.Select(a => a.Name).ToArray();
    }

    /// <summary>Reads the dependencies of the assembly at <paramref name="assemblyPath"/>.</summary>
    public static NamespaceDependencies Read(string assemblyPath)
    {
        using var module = ModuleDefinition.ReadModule(assemblyPath);
        return new NamespaceDependencies(module);
    }

    /// <summary>The top-level namespace of a full namespace under Osprey, or null outside it (compiler-emitted attributes).</summary>
    public static string? Segment(string ns)
    {
        if (ns == Root) return Root;
        if (!ns.StartsWith(Root + ".", StringComparison.Ordinal)) return null;
        var rest = ns[(Root.Length + 1)..];
        var dot = rest.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? rest : rest[..dot];
    }

    private static TypeReference Outermost(TypeReference type)
    {
        while (type.DeclaringType is not null) type = type.DeclaringType;
        return type;
    }

    private void Visit(TypeDefinition type, string from)
    {
        var source = Outermost(type).FullName;
        void Use(TypeReference? t) => Add(from, source, t);
        Use(type.BaseType);
        foreach (var i in type.Interfaces) { Use(i.InterfaceType); Attributes(i.CustomAttributes, Use); }
        Generics(type.GenericParameters, Use);
        Attributes(type.CustomAttributes, Use);
        foreach (var f in type.Fields) { Use(f.FieldType); Attributes(f.CustomAttributes, Use); }
        foreach (var p in type.Properties)
        {
            Use(p.PropertyType);
            foreach (var x in p.Parameters) Use(x.ParameterType);
            Attributes(p.CustomAttributes, Use);
        }
        foreach (var e in type.Events) { Use(e.EventType); Attributes(e.CustomAttributes, Use); }
        foreach (var m in type.Methods) Method(m, Use);
    }

    private static void Method(MethodDefinition m, Action<TypeReference?> use)
    {
        use(m.ReturnType);
        Attributes(m.CustomAttributes, use);
        Attributes(m.MethodReturnType.CustomAttributes, use);
        foreach (var p in m.Parameters) { use(p.ParameterType); Attributes(p.CustomAttributes, use); }
        Generics(m.GenericParameters, use);
        foreach (var o in m.Overrides) Member(o, use);
        if (!m.HasBody) return;
        foreach (var v in m.Body.Variables) use(v.VariableType);
        foreach (var h in m.Body.ExceptionHandlers) use(h.CatchType);
        foreach (var i in m.Body.Instructions)
        {
            switch (i.Operand)
            {
                case TypeReference t: use(t); break;
                case MemberReference r: Member(r, use); break;
                case CallSite c: use(c.ReturnType); foreach (var p in c.Parameters) use(p.ParameterType); break;
                case VariableDefinition v: use(v.VariableType); break;
                case ParameterDefinition p: use(p.ParameterType); break;
            }
        }
    }

    private static void Member(MemberReference r, Action<TypeReference?> use)
    {
        use(r.DeclaringType);
        switch (r)
        {
            case GenericInstanceMethod g:
                foreach (var a in g.GenericArguments) use(a);
                Member(g.ElementMethod, use);
                break;
            case MethodReference m:
                use(m.ReturnType);
                foreach (var p in m.Parameters) use(p.ParameterType);
                break;
            case FieldReference f:
                use(f.FieldType);
                break;
            case PropertyReference p:
                use(p.PropertyType);
                break;
            case EventReference e:
                use(e.EventType);
                break;
        }
    }

    private static void Generics(IEnumerable<GenericParameter> parameters, Action<TypeReference?> use)
    {
        foreach (var g in parameters)
        {
            foreach (var c in g.Constraints) use(c.ConstraintType);
            Attributes(g.CustomAttributes, use);
        }
    }

    private static void Attributes(IEnumerable<CustomAttribute> attributes, Action<TypeReference?> use)
    {
        foreach (var a in attributes)
        {
            use(a.AttributeType);
            // typeof(X) arguments, e.g. [JsonSerializable(typeof(X))].
            foreach (var arg in a.ConstructorArguments.Concat(a.Fields.Concat(a.Properties).Select(n => n.Argument)))
                if (arg.Value is TypeReference t) use(t);
        }
    }

    /// <summary>Records every Osprey type inside <paramref name="type"/> (generic arguments, element types, declaring types).</summary>
    private void Add(string from, string source, TypeReference? type)
    {
        switch (type)
        {
            case null:
            case GenericParameter:
                return;
            case GenericInstanceType g:
                Add(from, source, g.ElementType);
                foreach (var a in g.GenericArguments) Add(from, source, a);
                return;
            case FunctionPointerType f:
                Add(from, source, f.ReturnType);
                foreach (var p in f.Parameters) Add(from, source, p.ParameterType);
                return;
            case IModifierType m:
                Add(from, source, m.ModifierType);
                Add(from, source, ((TypeSpecification)type).ElementType);
                return;
            case TypeSpecification s:
                Add(from, source, s.ElementType);
                return;
        }
        // Only this module's own types name an Osprey namespace (a referenced assembly's types are not the library's).
        if (type.Scope is not ModuleDefinition module || module != _module) return;
        var outer = Outermost(type);
        var to = Segment(outer.Namespace);
        if (to is null || to == from) return;
        _edges.TryAdd((from, to), $"{source} → {outer.FullName}");
    }
}
