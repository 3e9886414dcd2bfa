namespace Osprey.Tokenization.Jinja;

// The syntax tree. Every node keeps its template position so runtime errors can name the line.

internal abstract record Node(int Line, int Col);

internal abstract record Expr(int Line, int Col) : Node(Line, Col);

internal sealed record ConstExpr(object? Value, int Line, int Col) : Expr(Line, Col);

internal sealed record NameExpr(string Name, int Line, int Col) : Expr(Line, Col);

internal sealed record ListExpr(List<Expr> Items, bool IsTuple, int Line, int Col) : Expr(Line, Col);

internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Line, int Col) : Expr(Line, Col);

internal sealed record AttrExpr(Expr Target, string Name, int Line, int Col) : Expr(Line, Col);

internal sealed record ItemExpr(Expr Target, Expr Key, int Line, int Col) : Expr(Line, Col);

internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line, int Col) : Expr(Line, Col);

internal sealed record Args(List<Expr> Positional, List<(string Name, Expr Value)> Named)
{
    public static readonly Args Empty = new([], []);
}

internal sealed record CallExpr(Expr Target, Args Args, int Line, int Col) : Expr(Line, Col);

internal sealed record FilterExpr(Expr Target, string Name, Args Args, int Line, int Col) : Expr(Line, Col);

internal sealed record TestExpr(Expr Target, string Name, Args Args, int Line, int Col) : Expr(Line, Col);

internal sealed record UnaryExpr(string Op, Expr Operand, int Line, int Col) : Expr(Line, Col);

internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line, int Col) : Expr(Line, Col);

internal sealed record CompareExpr(Expr First, List<(string Op, Expr Right)> Rest, int Line, int Col) : Expr(Line, Col);

internal sealed record CondExpr(Expr Condition, Expr Then, Expr? Else, int Line, int Col) : Expr(Line, Col);

internal sealed record ConcatExpr(List<Expr> Parts, int Line, int Col) : Expr(Line, Col);

internal abstract record Stmt(int Line, int Col) : Node(Line, Col);

internal sealed record TextStmt(string Text, int Line, int Col) : Stmt(Line, Col);

internal sealed record OutputStmt(Expr Value, int Line, int Col) : Stmt(Line, Col);

internal sealed record IfStmt(List<(Expr Condition, List<Stmt> Body)> Branches, List<Stmt>? Else, int Line, int Col) : Stmt(Line, Col);

/// <summary>An assignment target: a name, a tuple of names, or a namespace attribute (ns.attr).</summary>
internal sealed record Target(List<string> Names, string? Attribute, bool IsTuple);

internal sealed record ForStmt(Target Target, Expr Iterable, Expr? Filter, List<Stmt> Body, List<Stmt>? Else, int Line, int Col) : Stmt(Line, Col);

internal sealed record SetStmt(Target Target, Expr Value, int Line, int Col) : Stmt(Line, Col);

internal sealed record SetBlockStmt(Target Target, List<Stmt> Body, List<(string Name, Args Args)> Filters, int Line, int Col) : Stmt(Line, Col);

internal sealed record FilterBlockStmt(List<(string Name, Args Args)> Filters, List<Stmt> Body, int Line, int Col) : Stmt(Line, Col);

internal sealed record MacroStmt(string Name, List<(string Name, Expr? Default)> Params, List<Stmt> Body, int Line, int Col) : Stmt(Line, Col);

internal sealed record WithStmt(List<(string Name, Expr Value)> Assignments, List<Stmt> Body, int Line, int Col) : Stmt(Line, Col);

internal sealed record BlockStmt(List<Stmt> Body, int Line, int Col) : Stmt(Line, Col);

internal sealed record BreakStmt(int Line, int Col) : Stmt(Line, Col);

internal sealed record ContinueStmt(int Line, int Col) : Stmt(Line, Col);
