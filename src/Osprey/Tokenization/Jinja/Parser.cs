namespace Osprey.Tokenization.Jinja;

/// <summary>
/// Recursive-descent parser following Jinja2's grammar and precedence: conditional expression, or, and, not,
/// comparisons, + and -, ~, * / // %, **, unary minus, then primaries with attribute/item/call postfixes and
/// filters and tests.
/// </summary>
internal sealed class Parser
{
    private readonly List<Token> _tokens;
    private int _pos;

    public Parser(List<Token> tokens) => _tokens = tokens;

    private Token Current => _tokens[_pos];

    private Token Peek(int ahead = 1) => _tokens[Math.Min(_pos + ahead, _tokens.Count - 1)];

    private Token Next() => _tokens[_pos++];

    private static JinjaException Error(Token at, string message) =>
        new($"Template syntax error at line {at.Line}, column {at.Column}: {message}");

    private bool IsOp(string op) => Current.Kind == TokenKind.Op && Current.Value == op;

    private bool IsName(string name) => Current.Kind == TokenKind.Name && Current.Value == name;

    private Token ExpectOp(string op)
    {
        if (!IsOp(op)) throw Error(Current, $"expected '{op}' but found {Describe(Current)}.");
        return Next();
    }

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name) throw Error(Current, $"expected a name but found {Describe(Current)}.");
        return Next().Value;
    }

    private void ExpectBlockEnd()
    {
        if (Current.Kind != TokenKind.BlockEnd) throw Error(Current, $"expected '%}}' but found {Describe(Current)}.");
        Next();
    }

    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Eof => "the end of the template",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.VarEnd => "'}}'",
        TokenKind.String => "a string",
        _ => $"'{t.Value}'",
    };

    public List<Stmt> ParseTemplate()
    {
        var body = ParseBody([], out _);
        if (Current.Kind != TokenKind.Eof) throw Error(Current, $"unexpected {Describe(Current)}.");
        return body;
    }

    /// <summary>Parses statements until a block tag named in <paramref name="ends"/>; leaves the position on that name.</summary>
    private List<Stmt> ParseBody(string[] ends, out string? endName)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    if (ends.Length > 0) throw Error(t, $"the template ended while looking for {string.Join(" or ", ends.Select(e => $"'{{% {e} %}}'"))}.");
                    endName = null;
                    return body;
                case TokenKind.Text:
                    Next();
                    body.Add(new TextStmt(t.Value, t.Line, t.Column));
                    break;
                case TokenKind.VarBegin:
                    Next();
                    var expr = ParseTupleOrExpr();
                    if (Current.Kind != TokenKind.VarEnd) throw Error(Current, $"expected '}}}}' but found {Describe(Current)}.");
                    Next();
                    body.Add(new OutputStmt(expr, t.Line, t.Column));
                    break;
                case TokenKind.BlockBegin:
                    var name = Peek();
                    if (name.Kind == TokenKind.Name && ends.Contains(name.Value))
                    {
                        Next();
                        endName = name.Value;
                        return body;
                    }
                    Next();
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Error(t, $"unexpected {Describe(t)}.");
            }
        }
    }

    private Stmt ParseStatement()
    {
        var t = Current;
        if (t.Kind != TokenKind.Name) throw Error(t, $"expected a tag name but found {Describe(t)}.");
        Next();
        switch (t.Value)
        {
            case "if": return ParseIf(t);
            case "for": return ParseFor(t);
            case "set": return ParseSet(t);
            case "macro": return ParseMacro(t);
            case "filter":
            {
                var filters = ParseFilterChain(first: true);
                ExpectBlockEnd();
                var body = ParseBody(["endfilter"], out _);
                Next();
                ExpectBlockEnd();
                return new FilterBlockStmt(filters, body, t.Line, t.Column);
            }
            case "generation":
            {
                // transformers' AssistantTracker marks assistant text for masks; rendering is unchanged.
                ExpectBlockEnd();
                var body = ParseBody(["endgeneration"], out _);
                Next();
                ExpectBlockEnd();
                return new BlockStmt(body, t.Line, t.Column);
            }
            case "with":
            {
                var assignments = new List<(string, Expr)>();
                while (Current.Kind != TokenKind.BlockEnd)
                {
                    if (assignments.Count > 0) ExpectOp(",");
                    var name = ExpectName();
                    ExpectOp("=");
                    assignments.Add((name, ParseExpr()));
                }
                ExpectBlockEnd();
                var body = ParseBody(["endwith"], out _);
                Next();
                ExpectBlockEnd();
                return new WithStmt(assignments, body, t.Line, t.Column);
            }
            case "break":
                ExpectBlockEnd();
                return new BreakStmt(t.Line, t.Column);
            case "continue":
                ExpectBlockEnd();
                return new ContinueStmt(t.Line, t.Column);
            default:
                throw Error(t, $"unknown tag '{t.Value}'.");
        }
    }

    private Stmt ParseIf(Token start)
    {
        var branches = new List<(Expr, List<Stmt>)>();
        List<Stmt>? elseBody = null;
        var condition = ParseExpr();
        ExpectBlockEnd();
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out var end);
            branches.Add((condition, body));
            Next();
            if (end == "elif")
            {
                condition = ParseExpr();
                ExpectBlockEnd();
                continue;
            }
            ExpectBlockEnd();
            if (end == "else")
            {
                elseBody = ParseBody(["endif"], out _);
                Next();
                ExpectBlockEnd();
            }
            return new IfStmt(branches, elseBody, start.Line, start.Column);
        }
    }

    private Target ParseTarget(bool allowAttribute)
    {
        var names = new List<string> { ExpectName() };
        if (allowAttribute && IsOp("."))
        {
            Next();
            return new Target(names, ExpectName(), false);
        }
        var isTuple = false;
        while (IsOp(","))
        {
            isTuple = true;
            Next();
            if (Current.Kind != TokenKind.Name) break;
            names.Add(ExpectName());
        }
        return new Target(names, null, isTuple);
    }

    private Stmt ParseFor(Token start)
    {
        var parens = IsOp("(");
        if (parens) Next();
        var target = ParseTarget(allowAttribute: false);
        if (parens) ExpectOp(")");
        if (!IsName("in")) throw Error(Current, $"expected 'in' but found {Describe(Current)}.");
        Next();
        // The iterable cannot be a bare conditional expression: 'if' here starts the loop filter.
        var iterable = ParseOr();
        if (IsOp(","))
        {
            var items = new List<Expr> { iterable };
            while (IsOp(","))
            {
                Next();
                items.Add(ParseOr());
            }
            iterable = new ListExpr(items, true, iterable.Line, iterable.Col);
        }
        Expr? filter = null;
        if (IsName("if"))
        {
            Next();
            filter = ParseExpr();
        }
        if (IsName("recursive")) throw Error(Current, "recursive loops are not supported.");
        ExpectBlockEnd();
        var body = ParseBody(["else", "endfor"], out var end);
        Next();
        ExpectBlockEnd();
        List<Stmt>? elseBody = null;
        if (end == "else")
        {
            elseBody = ParseBody(["endfor"], out _);
            Next();
            ExpectBlockEnd();
        }
        return new ForStmt(target, iterable, filter, body, elseBody, start.Line, start.Column);
    }

    private Stmt ParseSet(Token start)
    {
        var target = ParseTarget(allowAttribute: true);
        if (IsOp("="))
        {
            Next();
            var value = ParseTupleOrExpr();
            ExpectBlockEnd();
            return new SetStmt(target, value, start.Line, start.Column);
        }
        var filters = IsOp("|") ? ParseFilterChain(first: false) : [];
        ExpectBlockEnd();
        var body = ParseBody(["endset"], out _);
        Next();
        ExpectBlockEnd();
        return new SetBlockStmt(target, body, filters, start.Line, start.Column);
    }

    private List<(string, Args)> ParseFilterChain(bool first)
    {
        var filters = new List<(string, Args)>();
        while (first || IsOp("|"))
        {
            if (!first) Next();
            first = false;
            var name = ExpectName();
            filters.Add((name, IsOp("(") ? ParseCallArgs() : Args.Empty));
        }
        return filters;
    }

    private Stmt ParseMacro(Token start)
    {
        var name = ExpectName();
        ExpectOp("(");
        var parameters = new List<(string, Expr?)>();
        while (!IsOp(")"))
        {
            if (parameters.Count > 0) ExpectOp(",");
            if (IsOp(")")) break;
            var p = ExpectName();
            Expr? def = null;
            if (IsOp("="))
            {
                Next();
                def = ParseExpr();
            }
            parameters.Add((p, def));
        }
        Next();
        ExpectBlockEnd();
        var body = ParseBody(["endmacro"], out _);
        Next();
        if (Current.Kind == TokenKind.Name) Next();
        ExpectBlockEnd();
        return new MacroStmt(name, parameters, body, start.Line, start.Column);
    }

    private Expr ParseTupleOrExpr()
    {
        var first = ParseExpr();
        if (!IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (IsOp(","))
        {
            Next();
            if (Current.Kind is TokenKind.VarEnd or TokenKind.BlockEnd || IsOp(")")) break;
            items.Add(ParseExpr());
        }
        return new ListExpr(items, true, first.Line, first.Col);
    }

    public Expr ParseExpr()
    {
        var expr = ParseOr();
        while (IsName("if"))
        {
            var t = Next();
            var condition = ParseOr();
            Expr? otherwise = null;
            if (IsName("else"))
            {
                Next();
                otherwise = ParseExpr();
            }
            expr = new CondExpr(condition, expr, otherwise, t.Line, t.Column);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            var t = Next();
            left = new BinaryExpr("or", left, ParseAnd(), t.Line, t.Column);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            var t = Next();
            left = new BinaryExpr("and", left, ParseNot(), t.Line, t.Column);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            var t = Next();
            return new UnaryExpr("not", ParseNot(), t.Line, t.Column);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Op && Current.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = Next().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (IsName("in"))
            {
                Next();
                rest.Add(("in", ParseMath1()));
            }
            else if (IsName("not") && Peek().Kind == TokenKind.Name && Peek().Value == "in")
            {
                Next();
                Next();
                rest.Add(("notin", ParseMath1()));
            }
            else
            {
                break;
            }
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, first.Line, first.Col);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            var t = Next();
            left = new BinaryExpr(t.Value, left, ParseConcat(), t.Line, t.Column);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var first = ParseMath2();
        if (!IsOp("~")) return first;
        var parts = new List<Expr> { first };
        while (IsOp("~"))
        {
            Next();
            parts.Add(ParseMath2());
        }
        return new ConcatExpr(parts, first.Line, first.Col);
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Op && Current.Value is "*" or "/" or "//" or "%")
        {
            var t = Next();
            left = new BinaryExpr(t.Value, left, ParsePow(), t.Line, t.Column);
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(true);
        while (IsOp("**"))
        {
            var t = Next();
            left = new BinaryExpr("**", left, ParseUnary(true), t.Line, t.Column);
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (IsOp("-") || IsOp("+"))
        {
            var t = Next();
            node = new UnaryExpr(t.Value, ParseUnary(false), t.Line, t.Column);
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterExpr(node);
        return node;
    }

    private Expr ParsePrimary()
    {
        var t = Current;
        switch (t.Kind)
        {
            case TokenKind.Name:
                Next();
                return t.Value switch
                {
                    "true" or "True" => new ConstExpr(true, t.Line, t.Column),
                    "false" or "False" => new ConstExpr(false, t.Line, t.Column),
                    "none" or "None" => new ConstExpr(null, t.Line, t.Column),
                    _ => new NameExpr(t.Value, t.Line, t.Column),
                };
            case TokenKind.String:
            {
                Next();
                var s = (string)t.Literal!;
                // Adjacent string literals concatenate, as in Python.
                while (Current.Kind == TokenKind.String) s += (string)Next().Literal!;
                return new ConstExpr(s, t.Line, t.Column);
            }
            case TokenKind.Integer:
            case TokenKind.Float:
                Next();
                return new ConstExpr(t.Literal, t.Line, t.Column);
            case TokenKind.Op when t.Value == "(":
            {
                Next();
                if (IsOp(")"))
                {
                    Next();
                    return new ListExpr([], true, t.Line, t.Column);
                }
                var first = ParseExpr();
                if (IsOp(")"))
                {
                    Next();
                    return first;
                }
                var items = new List<Expr> { first };
                while (IsOp(","))
                {
                    Next();
                    if (IsOp(")")) break;
                    items.Add(ParseExpr());
                }
                ExpectOp(")");
                return new ListExpr(items, true, t.Line, t.Column);
            }
            case TokenKind.Op when t.Value == "[":
            {
                Next();
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (IsOp("]")) break;
                    items.Add(ParseExpr());
                }
                Next();
                return new ListExpr(items, false, t.Line, t.Column);
            }
            case TokenKind.Op when t.Value == "{":
            {
                Next();
                var items = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (IsOp("}")) break;
                    var key = ParseExpr();
                    ExpectOp(":");
                    items.Add((key, ParseExpr()));
                }
                Next();
                return new DictExpr(items, t.Line, t.Column);
            }
            default:
                throw Error(t, $"unexpected {Describe(t)}.");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (IsOp("."))
            {
                Next();
                var attr = Current;
                if (attr.Kind == TokenKind.Name)
                {
                    Next();
                    node = new AttrExpr(node, attr.Value, t.Line, t.Column);
                }
                else if (attr.Kind == TokenKind.Integer)
                {
                    Next();
                    node = new ItemExpr(node, new ConstExpr(attr.Literal, attr.Line, attr.Column), t.Line, t.Column);
                }
                else
                {
                    throw Error(attr, $"expected an attribute name but found {Describe(attr)}.");
                }
            }
            else if (IsOp("["))
            {
                Next();
                node = new ItemExpr(node, ParseSubscript(), t.Line, t.Column);
                ExpectOp("]");
            }
            else if (IsOp("("))
            {
                node = new CallExpr(node, ParseCallArgs(), t.Line, t.Column);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript()
    {
        var t = Current;
        Expr? start = null;
        if (!IsOp(":"))
        {
            start = ParseExpr();
            if (!IsOp(":")) return start;
        }
        Next();
        Expr? stop = null, step = null;
        if (!IsOp("]") && !IsOp(":")) stop = ParseExpr();
        if (IsOp(":"))
        {
            Next();
            if (!IsOp("]")) step = ParseExpr();
        }
        return new SliceExpr(start, stop, step, t.Line, t.Column);
    }

    private Args ParseCallArgs()
    {
        ExpectOp("(");
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (positional.Count + named.Count > 0) ExpectOp(",");
            if (IsOp(")")) break;
            if (Current.Kind == TokenKind.Name && Peek().Kind == TokenKind.Op && Peek().Value == "=")
            {
                var name = Next().Value;
                Next();
                named.Add((name, ParseExpr()));
            }
            else
            {
                if (named.Count > 0) throw Error(Current, "a positional argument follows a keyword argument.");
                positional.Add(ParseExpr());
            }
        }
        Next();
        return new Args(positional, named);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                var t = Next();
                var name = ExpectName();
                node = new FilterExpr(node, name, IsOp("(") ? ParseCallArgs() : Args.Empty, t.Line, t.Column);
            }
            else if (IsName("is"))
            {
                var t = Next();
                var negated = false;
                if (IsName("not"))
                {
                    Next();
                    negated = true;
                }
                var name = ExpectName();
                Args args;
                if (IsOp("("))
                {
                    args = ParseCallArgs();
                }
                else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                          || IsOp("(") || IsOp("[") || IsOp("{"))
                         && !IsName("else") && !IsName("or") && !IsName("and") && !IsName("is") && !IsName("if"))
                {
                    args = new Args([ParsePostfix(ParsePrimary())], []);
                }
                else
                {
                    args = Args.Empty;
                }
                node = new TestExpr(node, name, args, t.Line, t.Column);
                if (negated) node = new UnaryExpr("not", node, t.Line, t.Column);
            }
            else if (IsOp("("))
            {
                node = new CallExpr(node, ParseCallArgs(), Current.Line, Current.Column);
            }
            else
            {
                return node;
            }
        }
    }
}
