using System.Globalization;
using System.Text;

namespace Osprey.Tokenization.Jinja;

internal enum TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Op, Eof }

internal readonly record struct Token(TokenKind Kind, string Value, int Line, int Column, object? Literal = null);

/// <summary>
/// Splits a template into text and tag tokens, applying the whitespace rules of the chat-template environment:
/// trim_blocks drops the newline after a block or comment tag, lstrip_blocks drops the indentation before one,
/// and '-' / '+' on a tag override both.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] s_ops = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    private readonly string _src;
    private readonly List<Token> _tokens = [];
    private readonly List<int> _lineStarts = [0];
    private int _pos;

    // Whether the previous tag's end consumed a newline, which lets lstrip_blocks apply to text with no newline of its own.
    private bool _lineStarting = true;

    private Lexer(string src)
    {
        _src = src;
        for (var i = 0; i < src.Length; i++)
        {
            if (src[i] == '\n') _lineStarts.Add(i + 1);
        }
    }

    public static List<Token> Tokenize(string source)
    {
        // Jinja normalises every newline to \n and drops one trailing newline (keep_trailing_newline=False).
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];
        var lexer = new Lexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private (int Line, int Col) Where(int pos)
    {
        var idx = _lineStarts.BinarySearch(pos);
        if (idx < 0) idx = ~idx - 1;
        return (idx + 1, pos - _lineStarts[idx] + 1);
    }

    private JinjaException Error(int pos, string message)
    {
        var (line, col) = Where(pos);
        return new JinjaException($"Template syntax error at line {line}, column {col}: {message}");
    }

    private void Add(TokenKind kind, string value, int pos, object? literal = null)
    {
        var (line, col) = Where(pos);
        _tokens.Add(new Token(kind, value, line, col, literal));
    }

    private int FindTagStart(int from)
    {
        for (var i = from; i + 1 < _src.Length; i++)
        {
            if (_src[i] == '{' && _src[i + 1] is '{' or '%' or '#') return i;
        }
        return -1;
    }

    private void Run()
    {
        while (_pos < _src.Length)
        {
            var start = FindTagStart(_pos);
            if (start < 0)
            {
                Add(TokenKind.Text, _src[_pos..], _pos);
                break;
            }
            var text = _src[_pos..start];
            var textPos = _pos;
            var kind = _src[start + 1];
            var sign = start + 2 < _src.Length && _src[start + 2] is '-' or '+' ? _src[start + 2] : '\0';
            if (sign == '-')
            {
                text = text.TrimEnd();
            }
            else if (sign != '+' && kind != '{')
            {
                var lpos = text.LastIndexOf('\n') + 1;
                if ((lpos > 0 || _lineStarting) && lpos < text.Length && string.IsNullOrWhiteSpace(text[lpos..]))
                {
                    text = text[..lpos];
                }
            }
            if (text.Length > 0) Add(TokenKind.Text, text, textPos);
            _pos = start + 2 + (sign != '\0' ? 1 : 0);
            if (kind == '#')
            {
                LexComment(start);
            }
            else if (kind == '%' && IsRawBlock())
            {
                LexRaw(start);
            }
            else
            {
                LexTag(kind == '{', start);
            }
        }
        Add(TokenKind.Eof, "", _src.Length);
    }

    private void LexComment(int start)
    {
        var end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0) throw Error(start, "the comment is never closed with '#}'.");
        var sign = end > _pos && _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
        _pos = end + 2;
        ApplyEndTrim(sign, block: true);
    }

    private bool IsRawBlock()
    {
        var p = _pos;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        if (string.CompareOrdinal(_src, p, "raw", 0, 3) != 0) return false;
        p += 3;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        return string.CompareOrdinal(_src, p, "%}", 0, 2) == 0 || string.CompareOrdinal(_src, p, "-%}", 0, 3) == 0;
    }

    private void LexRaw(int start)
    {
        // {% raw %}...{% endraw %}: the body is text, verbatim.
        var close = _src.IndexOf("%}", _pos, StringComparison.Ordinal);
        var rawSign = _src[close - 1] == '-' ? '-' : '\0';
        _pos = close + 2;
        ApplyEndTrim(rawSign, block: true);
        var bodyStart = _pos;
        var p = bodyStart;
        while (true)
        {
            var tag = _src.IndexOf("{%", p, StringComparison.Ordinal);
            if (tag < 0) throw Error(start, "the raw block is never closed with '{% endraw %}'.");
            var q = tag + 2;
            var sign = q < _src.Length && _src[q] is '-' or '+' ? _src[q] : '\0';
            if (sign != '\0') q++;
            while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
            if (string.CompareOrdinal(_src, q, "endraw", 0, 6) == 0)
            {
                var body = _src[bodyStart..tag];
                if (sign == '-') body = body.TrimEnd();
                else if (sign != '+')
                {
                    var lpos = body.LastIndexOf('\n') + 1;
                    if (lpos > 0 && lpos < body.Length && string.IsNullOrWhiteSpace(body[lpos..])) body = body[..lpos];
                }
                if (body.Length > 0) Add(TokenKind.Text, body, bodyStart);
                var end = _src.IndexOf("%}", q, StringComparison.Ordinal);
                var endSign = _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
                _pos = end + 2;
                ApplyEndTrim(endSign, block: true);
                return;
            }
            p = q;
        }
    }

    private void ApplyEndTrim(char sign, bool block)
    {
        var before = _pos;
        if (sign == '-')
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
        }
        else if (sign != '+' && block && _pos < _src.Length && _src[_pos] == '\n')
        {
            _pos++;
        }
        _lineStarting = _pos > before ? _src[_pos - 1] == '\n' : false;
    }

    private void LexTag(bool variable, int start)
    {
        Add(variable ? TokenKind.VarBegin : TokenKind.BlockBegin, variable ? "{{" : "{%", start);
        var depth = 0;
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
            if (_pos >= _src.Length) throw Error(start, variable ? "the expression is never closed with '}}'." : "the tag is never closed with '%}'.");
            if (depth == 0)
            {
                var close = variable ? "}}" : "%}";
                foreach (var sign in new[] { '-', '+', '\0' })
                {
                    if (sign == '+' && variable) continue;
                    var marker = sign == '\0' ? close : sign + close;
                    if (string.CompareOrdinal(_src, _pos, marker, 0, marker.Length) == 0)
                    {
                        Add(variable ? TokenKind.VarEnd : TokenKind.BlockEnd, marker, _pos);
                        _pos += marker.Length;
                        ApplyEndTrim(sign, block: !variable);
                        return;
                    }
                }
            }
            var c = _src[_pos];
            var tokPos = _pos;
            if (char.IsLetter(c) || c == '_')
            {
                while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                Add(TokenKind.Name, _src[tokPos.._pos], tokPos);
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (c is '\'' or '"')
            {
                Add(TokenKind.String, "", tokPos, LexString());
            }
            else
            {
                var op = s_ops.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0)
                    ?? throw Error(_pos, $"unexpected character '{c}'.");
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
                _pos += op.Length;
                Add(TokenKind.Op, op, tokPos);
            }
        }
    }

    private void LexNumber()
    {
        var start = _pos;
        // After a '.', digits are an attribute index (items.0), never the fraction of a float.
        var afterDot = start > 0 && _src[start - 1] == '.';
        var isFloat = false;
        SkipDigits();
        if (!afterDot && _pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            SkipDigits();
        }
        if (!afterDot && _pos < _src.Length && _src[_pos] is 'e' or 'E')
        {
            var p = _pos + 1;
            if (p < _src.Length && _src[p] is '+' or '-') p++;
            if (p < _src.Length && char.IsAsciiDigit(_src[p]))
            {
                isFloat = true;
                _pos = p;
                SkipDigits();
            }
        }
        var text = _src[start.._pos].Replace("_", "");
        if (isFloat) Add(TokenKind.Float, text, start, double.Parse(text, CultureInfo.InvariantCulture));
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var integer)) Add(TokenKind.Integer, text, start, integer);
        else throw Error(start, $"the integer {text} is too large (Osprey's integers are 64-bit).");
    }

    private void SkipDigits()
    {
        while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || (_src[_pos] == '_' && _pos + 1 < _src.Length && char.IsAsciiDigit(_src[_pos + 1])))) _pos++;
    }

    private string LexString()
    {
        var quote = _src[_pos];
        var start = _pos;
        _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length) throw Error(start, "the string is never closed.");
            var c = _src[_pos++];
            if (c == quote) return sb.ToString();
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_pos >= _src.Length) throw Error(start, "the string is never closed.");
            var e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case '\n': break;
                case 'x': sb.Append(Hex(2)); break;
                case 'u': sb.Append(Hex(4)); break;
                case 'U': sb.Append(Hex(8)); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
    }

    private string Hex(int digits)
    {
        if (_pos + digits > _src.Length) throw Error(_pos, "truncated escape in string.");
        var code = int.Parse(_src.AsSpan(_pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        _pos += digits;
        return char.ConvertFromUtf32(code);
    }
}
