#!/usr/bin/env python3
"""Writes src/Osprey/Tokenization/Data/unicode-norm.bin: the Unicode data Osprey's NFC/NFD/NFKC/NFKD
normalizer needs (canonical combining classes, canonical and compatibility decompositions, and which
canonical pairs recompose), taken from Python's unicodedata. .NET's own normalization needs ICU, which
Osprey runs without (invariant globalization).

Format (little-endian, deflate-compressed): magic b"ONRM", version u8, unicode version as a
length-prefixed ASCII string, then
  u32 n_ccc,    n_ccc x (u32 code point, u8 class)
  u32 n_decomp, n_decomp x (u32 code point, u8 flags [1 = compatibility, 2 = recomposes], u8 length, length x u32)
Hangul syllables are left out (algorithmic).
"""
import struct, sys, unicodedata, zlib, os

def main(out):
    cccs, decomps = [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
            continue
        ch = chr(cp)
        c = unicodedata.combining(ch)
        if c:
            cccs.append((cp, c))
        d = unicodedata.decomposition(ch)
        if not d:
            continue
        parts = d.split()
        compat = parts[0].startswith("<")
        if compat:
            parts = parts[1:]
        seq = [int(p, 16) for p in parts]
        flags = 1 if compat else 0
        if not compat and len(seq) == 2 and unicodedata.normalize("NFC", "".join(map(chr, seq))) == ch:
            flags |= 2
        decomps.append((cp, flags, seq))
    body = bytearray(b"ONRM") + bytes([1])
    v = unicodedata.unidata_version.encode()
    body += bytes([len(v)]) + v
    body += struct.pack("<I", len(cccs))
    for cp, c in cccs:
        body += struct.pack("<IB", cp, c)
    body += struct.pack("<I", len(decomps))
    for cp, flags, seq in decomps:
        body += struct.pack("<IBB", cp, flags, len(seq)) + b"".join(struct.pack("<I", s) for s in seq)
    data = zlib.compress(bytes(body), 9)[2:-4]  # raw deflate
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out)
    print(f"{out}: unicode {unicodedata.unidata_version}, {len(cccs)} combining classes, {len(decomps)} decompositions, {len(data)} bytes")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "src/Osprey/Tokenization/Data/unicode-norm.bin")


def write_fixture(path):
    """Expected NFC/NFD/NFKC/NFKD of tricky strings, from Python's unicodedata (same Unicode version as the table),
    for tests/Osprey.Tests/Tokenization/UnicodeNormalizationTests.cs."""
    import json
    samples = [
        "Cafe\u0301 re\u0301sume\u0301", "A\u030angstro\u0308m", "\u1112\u1161\u11ab\u1100\u116e\u11a8",  # jamo
        "\ud55c\u11a8", "\ufb01\ufb02 \u2126 \u212b \u00bd \u2460 \u3000", "q\u0307\u0323 q\u0323\u0307",
        "\u0061\u0328\u0301 \u0105\u0301", "\u1e9b\u0323", "\u0b47\u0b3e \u0b4b", "\uff21\uff22\uff23 \uff76\uff9e",
        "\U0001d400\U0001d401 \U0001d15e", "e\u0301\u0301\u0327", "\u00c5\u0301", "\u2000\u00a0x\u00b2",
        "\u0344 \u0f73 \u0958", "plain ascii", "",
    ]
    out = [{"text": s, **{f: unicodedata.normalize(f, s) for f in ("NFC", "NFD", "NFKC", "NFKD")}} for s in samples]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"unicode": unicodedata.unidata_version, "cases": out}, f, ensure_ascii=True, indent=1)
