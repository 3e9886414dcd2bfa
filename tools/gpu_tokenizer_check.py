#!/usr/bin/env python3
"""Acceptance check of Osprey's tokenizer against transformers on texts, conversations and tokenizers that are NOT
in the repository, built fresh on the machine that runs it (the GPU machine: transformers, tokenizers, no network).

What it builds (all seeded, so a rerun sees the same inputs):
  * texts: docstrings and random line windows of the source/text files of the installed Python packages (stdlib,
    transformers, tokenizers, torch, ...), random Unicode strings from many scripts and edge cases (combining marks,
    ZWJ emoji, astral letters, odd whitespace, controls, the tokenizer's own added/special tokens, "\u2581"), and
    NFD/NFKD variants of some of them;
  * conversations: random role sequences (system/user/assistant/tool, sometimes invalid ones), random tool schemas
    and tool calls, enable_thinking on/off/absent, add_generation_prompt on/off, contents drawn from the texts;
  * tokenizers: the real ones under --tokenizers (subfolders with tokenizer.json; e.g. the five npm ones) and, unless
    --no-train, four trained here: byte-level BPE (ChatML template with tools), Llama-style BPE with byte fallback,
    Unigram with Metaspace/NFKC, and BERT WordPiece (no chat template).

For each tokenizer it runs `<osprey> tokenize --model DIR` once, feeding JSON lines on stdin:
    {"text": ..., "add_special_tokens": bool}                  -> {"ids": [...], "decoded": ...}
    {"messages": [...], "add_generation_prompt": bool, "tools"?: [...], "enable_thinking"?: bool}
                                                              -> {"text": ..., "ids": [...]}
    a bad line (not JSON, no text/messages, wrong types)      -> {"error": ...}
and compares, line by line, with AutoTokenizer.from_pretrained(DIR):
    ids       == tok.encode(text, add_special_tokens=...)
    decoded   == tok.decode(<osprey's ids>)                  (decode is checked on its own, even when ids differ)
    chat text == tok.apply_chat_template(messages, tools=..., add_generation_prompt=..., tokenize=False, **extra)
    chat ids  == tok.encode(chat text, add_special_tokens=False)
    an exception in transformers must be an {"error"} line from osprey, and the other way round.

Output: $OUT/tokenizer_check_details.txt (the first --show mismatches of each kind per tokenizer, in detail),
$OUT/tokenizer_check_summary.json, and a table on stdout, last. Exit code 0 when nothing mismatched, 1 otherwise.

Usage on the GPU machine (OUT is set there; elsewhere it defaults to ./tokenizer_check_out):
    python3 tools/gpu_tokenizer_check.py --osprey /path/to/osprey --tokenizers /path/to/tokenizers
Options: --texts N (per tokenizer, default 600), --chats N (default 120), --seed S, --no-train, --only a,b,
--timeout SECONDS (per tokenizer, default 600), --show N (details per kind, default 5).
DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 is set for the osprey process unless already set (the GPU machine has no
ICU); pass --keep-env to leave the environment alone.
"""
import argparse
import ast
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
import unicodedata

# --------------------------------------------------------------------------------------------------------------------
# Texts


def package_dirs():
    dirs = [os.path.dirname(os.__file__)]
    for mod in ("transformers", "tokenizers", "torch", "jinja2", "numpy", "safetensors", "huggingface_hub"):
        try:
            m = __import__(mod)
            dirs.append(os.path.dirname(m.__file__))
        except Exception:  # noqa: BLE001 - whatever is installed will do
            pass
    return dirs


def source_files(rng, limit=4000):
    files = []
    for d in package_dirs():
        for root, subdirs, names in os.walk(d):
            subdirs.sort()
            for n in sorted(names):
                if n.endswith((".py", ".txt", ".md", ".rst", ".jinja", ".json", ".cfg", ".toml")):
                    files.append(os.path.join(root, n))
    rng.shuffle(files)
    return files[:limit]


def read_text(path, max_bytes=400_000):
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def docstrings(source):
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc and doc.strip():
                out.append(doc)
    return out


def package_texts(rng, n):
    """Docstrings and random windows of lines from installed packages' files (code, docs, licences)."""
    texts = []
    for path in source_files(rng):
        if len(texts) >= n:
            break
        src = read_text(path)
        if not src:
            continue
        if path.endswith(".py") and rng.random() < 0.5:
            docs = docstrings(src)
            if docs:
                texts.append(rng.choice(docs)[:3000])
                continue
        lines = src.splitlines(keepends=True)
        if not lines:
            continue
        start = rng.randrange(len(lines))
        texts.append("".join(lines[start:start + rng.randint(1, 40)])[:4000])
    return texts


POOLS = {
    "ascii": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "space": [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028",
              "\u202f", "\ufeff", "\u000b", "\u000c", "\u0085"],
    "latin": "".join(chr(c) for c in range(0xC0, 0x250) if c not in (0xD7, 0xF7)),
    "combining": "".join(chr(c) for c in range(0x300, 0x370)),
    "greek": "".join(chr(c) for c in range(0x391, 0x3CA) if c != 0x3A2),
    "cyrillic": "".join(chr(c) for c in range(0x410, 0x450)),
    "arabic": "".join(chr(c) for c in range(0x621, 0x64B)) + "\u064b\u064e\u0660\u0661\u0662",
    "hebrew": "".join(chr(c) for c in range(0x5D0, 0x5EB)),
    "devanagari": "".join(chr(c) for c in range(0x905, 0x940)) + "\u093e\u093f\u0940\u0947\u094d\u0902",
    "thai": "".join(chr(c) for c in range(0xE01, 0xE3A)),
    "cjk": "".join(chr(c) for c in range(0x4E00, 0x4E00 + 3000, 7)),
    "kana": "".join(chr(c) for c in range(0x3041, 0x3097)) + "".join(chr(c) for c in range(0x30A1, 0x30FB)),
    "hangul": "".join(chr(c) for c in range(0xAC00, 0xD7A4, 37)),
    "jamo": "".join(chr(c) for c in range(0x1100, 0x1113)) + "".join(chr(c) for c in range(0x1161, 0x1176)),
    "fullwidth": "".join(chr(c) for c in range(0xFF01, 0xFF5F)),
    "emoji": "".join(chr(c) for c in list(range(0x1F600, 0x1F650)) + list(range(0x1F300, 0x1F380))
                     + list(range(0x1F90C, 0x1F9FF, 3))) + "\u2600\u2615\u2764\u263a",
    "emoji_mod": ["\u200d", "\ufe0f", "\ufe0e", "\U0001F3FB", "\U0001F3FD", "\U0001F3FF", "\u20e3"],
    "flags": ["\U0001F1EB\U0001F1F7", "\U0001F1EF\U0001F1F5", "\U0001F1E7\U0001F1F7", "\U0001F3F4\u200d\u2620\ufe0f"],
    "astral": "".join(chr(c) for c in list(range(0x1D400, 0x1D434)) + list(range(0x20000, 0x20040))
                      + list(range(0x10330, 0x10340)) + [0x1D11E, 0x1F0A1]),
    "control": "".join(chr(c) for c in list(range(0x00, 0x09)) + list(range(0x0E, 0x20)) + [0x7F, 0x80, 0x9F]),
    "compat": "\ufb01\ufb02\u338f\u33a1\u216b\u00bd\u00b2\u2103\u2460\u24b6\u00aa\u2122",
    "meta": ["\u2581", "\u2581\u2581", "\u0120", "\u010a", "<0x41>", "##", "<unk>"],
}
WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up other "
         "about out many then them these so some her would make like him into time has look two more write go see "
         "number no way could people my than first water been call who oil its now find long down day did get come "
         "made may part don't I'm they'll WE'RE it's isn't").split()


def random_text(rng, specials):
    parts = []
    for _ in range(rng.randint(1, 24)):
        r = rng.random()
        if r < 0.30:
            parts.append(rng.choice(WORDS) + rng.choice(["", " ", " ", ", ", ". ", "\n"]))
        elif r < 0.36 and specials:
            parts.append(rng.choice(specials))
        else:
            pool = POOLS[rng.choice(list(POOLS))]
            k = rng.choice([1, 1, 2, 3, 5, 8, 20])
            parts.append("".join(rng.choice(pool) for _ in range(k)))
    text = "".join(parts)
    r = rng.random()
    if r < 0.03:
        text = rng.choice(["a", "!", " ", "\n", "\u597d", "\U0001F600", "ab", "12"]) * rng.randint(50, 400)
    elif r < 0.08:
        text = unicodedata.normalize(rng.choice(["NFD", "NFKD", "NFKC"]), text)
    elif r < 0.10:
        text = " " * rng.randint(1, 5) + text + " " * rng.randint(1, 5)
    return text


def build_texts(rng, n, base_texts, specials):
    """Half from installed packages, half random Unicode; plus the empty string and a few whitespace-only ones."""
    texts = ["", " ", "\n", "  \n\t "]
    pk = list(base_texts)
    rng.shuffle(pk)
    texts += pk[: n // 2]
    while len(texts) < n:
        texts.append(random_text(rng, specials))
    return texts


# --------------------------------------------------------------------------------------------------------------------
# Conversations

TYPES = ["string", "integer", "number", "boolean"]


def random_tool(rng, i):
    props = {}
    for j in range(rng.randint(0, 4)):
        p = {"type": rng.choice(TYPES)}
        if rng.random() < 0.6:
            p["description"] = rng.choice(["The value.", "A name, e.g. \"Oslo\".", "Größe in cm", "\u6570\u91cf",
                                           "Use <b>bold</b> & 'quotes'"])
        if p["type"] == "string" and rng.random() < 0.3:
            p["enum"] = ["a", "b", "c\u00e9"]
        props[f"arg_{j}_{rng.choice(WORDS).replace(chr(39), '')}"] = p
    fn = {"name": f"tool_{i}_{rng.choice(WORDS).replace(chr(39), '')}",
          "description": rng.choice(["Does a thing.", "Looks something up.\nSecond line.", "Calcule la r\u00e9ponse."]),
          "parameters": {"type": "object", "properties": props, "required": list(props)[:1]}}
    return {"type": "function", "function": fn}


def random_args(rng, tool):
    args = {}
    for name, p in tool["function"]["parameters"]["properties"].items():
        args[name] = {"string": rng.choice(["Oslo", "caf\u00e9", "\u6771\u4eac", "a \"quoted\" value", ""]),
                      "integer": rng.randint(-5, 1000), "number": rng.choice([0.5, 3.14159, -2.0, 1e-7]),
                      "boolean": rng.random() < 0.5}[p["type"]]
    return args


def random_content(rng, pool):
    text = rng.choice(pool)
    if len(text) > 400:
        start = rng.randrange(len(text) - 400)
        text = text[start:start + 400]
    return text


def random_conversation(rng, pool):
    tools = [random_tool(rng, i) for i in range(rng.randint(1, 3))] if rng.random() < 0.3 else None
    msgs = []
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": random_content(rng, pool)})
    turns = rng.randint(1, 4)
    for t in range(turns):
        msgs.append({"role": "user", "content": random_content(rng, pool)})
        if t == turns - 1 and rng.random() < 0.6:
            break
        if tools and rng.random() < 0.5:
            tool = rng.choice(tools)
            args = random_args(rng, tool)
            call = {"type": "function", "function": {"name": tool["function"]["name"],
                                                     "arguments": args if rng.random() < 0.5 else json.dumps(args)}}
            msgs.append({"role": "assistant", "content": rng.choice(["", "Let me check."]), "tool_calls": [call]})
            msgs.append({"role": "tool", "content": json.dumps({"result": random_content(rng, pool)[:80]},
                                                                 ensure_ascii=False)})
        msg = {"role": "assistant", "content": random_content(rng, pool)}
        if rng.random() < 0.2:
            msg["reasoning_content"] = random_content(rng, pool)
        elif rng.random() < 0.1:
            msg["content"] = "<think>\n" + random_content(rng, pool) + "\n</think>\n\n" + msg["content"]
        msgs.append(msg)
    r = rng.random()
    if r < 0.05:
        msgs.insert(len(msgs) - 1, {"role": "user", "content": "another user turn"})  # two users in a row
    elif r < 0.08:
        msgs = [{"role": "assistant", "content": "I speak first."}] + msgs
    elif r < 0.10:
        msgs[-1]["content"] = None
    line = {"messages": msgs, "add_generation_prompt": msgs[-1]["role"] != "assistant" and rng.random() < 0.8}
    if tools:
        line["tools"] = tools
    r = rng.random()
    if r < 0.3:
        line["enable_thinking"] = True
    elif r < 0.6:
        line["enable_thinking"] = False
    return line


# --------------------------------------------------------------------------------------------------------------------
# Tokenizers trained here

CHATML_TOOLS_TEMPLATE = """{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}{% continue %}{% endif %}
<|im_start|>{{ message.role }}
{% if message.reasoning_content %}<think>
{{ message.reasoning_content | trim }}
</think>

{% endif %}{{ message.content if message.content is not none else '' }}
{%- for call in message.tool_calls or [] %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments if call.function.arguments is string else call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% if enable_thinking is defined and not enable_thinking %}<think>

</think>

{% endif %}{% endif %}"""


def train_tokenizers(texts, workdir, rng):
    """Four small tokenizers of different kinds, saved with save_pretrained into workdir/<name>."""
    from tokenizers import (Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers)
    from transformers import PreTrainedTokenizerFast

    corpus = [t for t in texts if t]
    out = {}

    def save(name, tok, **kwargs):
        folder = os.path.join(workdir, name)
        PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs).save_pretrained(folder)
        out[name] = folder

    chat = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    def build_bytelevel_bpe():
        # Byte-level BPE, GPT-2/Qwen style, with a ChatML template that knows tools and thinking.
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=3000, special_tokens=chat, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False))
        tok.add_tokens(["<think>", "</think>", "<tool_call>", "</tool_call>"])
        save("trained_bytelevel_bpe", tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
             chat_template=CHATML_TOOLS_TEMPLATE)

    def build_llama_bytefallback():
        # Llama/SentencePiece style BPE with byte fallback: train with Metaspace, then rebuild as Llama does.
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        tok.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=300, show_progress=False))
        spec = json.loads(tok.to_str())
        vocab = spec["model"]["vocab"]
        for b in range(256):
            vocab.setdefault(f"<0x{b:02X}>", len(vocab))
        spec["model"].update(byte_fallback=True, fuse_unk=True)
        spec["pre_tokenizer"] = None
        spec["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                                  {"type": "Replace", "pattern": {"String": " "},
                                                                   "content": "\u2581"}]}
        spec["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
        tok = Tokenizer.from_str(json.dumps(spec))
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[
            ("<s>", tok.token_to_id("<s>"))])
        llama_template = ("{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content | trim }} "
                          "[/INST]{% elif m.role == 'assistant' %} {{ m.content | trim }} {{ eos_token }}{% elif m.role == "
                          "'system' %}<<SYS>>\n{{ m.content }}\n<</SYS>>\n\n{% else %}{{ raise_exception('Unsupported role "
                          "' + m.role) }}{% endif %}{% endfor %}")
        save("trained_llama_bytefallback", tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
             chat_template=llama_template)

    def build_unigram():
        # Unigram with NFKC and Metaspace.
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        tok.train_from_iterator(corpus, trainers.UnigramTrainer(
            vocab_size=1500, special_tokens=["<pad>", "</s>", "<unk>"] + chat, unk_token="<unk>", show_progress=False))
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[
            ("</s>", tok.token_to_id("</s>"))])
        save("trained_unigram", tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
             chat_template=CHATML_TOOLS_TEMPLATE)

    def build_wordpiece_bert():
        # BERT WordPiece (lowercasing, accent stripping, CJK splitting), no chat template.
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True,
                                                    handle_chinese_chars=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(corpus, trainers.WordPieceTrainer(
            vocab_size=2000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
        tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                       ("[CLS]", tok.token_to_id("[CLS]")))
        save("trained_wordpiece_bert", tok, unk_token="[UNK]", sep_token="[SEP]", cls_token="[CLS]",
             pad_token="[PAD]", mask_token="[MASK]")

    for build in (build_bytelevel_bpe, build_llama_bytefallback, build_unigram, build_wordpiece_bert):
        try:
            build()
        except Exception:  # noqa: BLE001 - the other kinds are still checked
            print(f"training {build.__name__} failed:", file=sys.stderr)
            traceback.print_exc()
    return out


# --------------------------------------------------------------------------------------------------------------------
# Comparison

def err(e):
    return f"{type(e).__name__}: {e}"


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def tokens_around(tok, ids, i, width=4):
    lo, hi = max(0, i - width), i + width
    try:
        return tok.convert_ids_to_tokens([x for x in ids[lo:hi] if isinstance(x, int) and 0 <= x])
    except Exception as e:  # noqa: BLE001
        return [err(e)]


def reference_chat(tok, line):
    kwargs = {"tools": line.get("tools"), "add_generation_prompt": line.get("add_generation_prompt", False),
              "tokenize": False}
    if "enable_thinking" in line:
        kwargs["enable_thinking"] = line["enable_thinking"]
    text = tok.apply_chat_template(json.loads(json.dumps(line["messages"])), **kwargs)
    return text, list(tok.encode(text, add_special_tokens=False))


BAD_LINES = ["this is not json", "{}", '{"text": 5}', '{"messages": "hello"}', "[1, 2, 3]"]


class Report:
    def __init__(self, name, show):
        self.name, self.show = name, show
        self.counts = collections.Counter()
        self.details = collections.defaultdict(list)

    def ok(self, kind, detail=None):  # detail: accepted so ok/bad can be picked by a condition
        self.counts[kind + " ok"] += 1

    def bad(self, kind, detail):
        self.counts[kind + " MISMATCH"] += 1
        if len(self.details[kind]) < self.show:
            self.details[kind].append(detail)

    @property
    def mismatches(self):
        return sum(v for k, v in self.counts.items() if k.endswith("MISMATCH"))


def reference_tokenizer(folder, texts):
    """AutoTokenizer, unless its model-specific class (transformers 5 LlamaTokenizer for DeepSeek-V3 and Llama 2)
    rebuilds the pipeline and so disagrees with tokenizer.json: then the generic PreTrainedTokenizerFast, which
    follows tokenizer.json as Osprey does (see docs/tokenizers.md)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    auto = AutoTokenizer.from_pretrained(folder)
    try:
        generic = PreTrainedTokenizerFast.from_pretrained(folder)
    except Exception:  # noqa: BLE001 - no tokenizer.json: nothing to compare against
        return auto, type(auto).__name__
    for text in texts[:200]:
        if auto.encode(text) != generic.encode(text):
            return generic, f"PreTrainedTokenizerFast (AutoTokenizer's {type(auto).__name__} differs)"
    return auto, type(auto).__name__


def check_tokenizer(name, folder, texts, chats, args, env):
    rep = Report(name, args.show)
    tok, reference = reference_tokenizer(folder, texts)
    print(f"{name}: reference {reference}", flush=True)
    rng = random.Random(args.seed + 7)
    lines, expect = [], []
    for t in texts:
        ast_ = rng.random() < 0.5
        lines.append(json.dumps({"text": t, "add_special_tokens": ast_}, ensure_ascii=rng.random() < 0.5))
        try:
            expect.append(("text", t, ast_, list(tok.encode(t, add_special_tokens=ast_)), None))
        except Exception as e:  # noqa: BLE001
            expect.append(("text", t, ast_, None, err(e)))
    for c in chats:
        lines.append(json.dumps(c, ensure_ascii=False))
        try:
            expect.append(("chat", c, None, reference_chat(tok, c), None))
        except Exception as e:  # noqa: BLE001 - the reference raising is a result too
            expect.append(("chat", c, None, None, err(e)))
    for b in BAD_LINES:  # spread through the stream: an error must not end the session
        pos = rng.randrange(len(lines) + 1)
        lines.insert(pos, b)
        expect.insert(pos, ("bad", b, None, None, None))
    bad_at = {i for i, e in enumerate(expect) if e[0] == "bad"}

    cmd = [args.osprey, "tokenize", "--model", folder]
    started = time.time()
    try:
        proc = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=args.timeout, env=env)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr, code = f"timed out after {args.timeout}s", "timeout"
    elapsed = time.time() - started
    out_lines = stdout.split("\n")
    if out_lines and out_lines[-1] == "":
        out_lines.pop()
    if code == 2 and "is not supported" in stderr and not out_lines:
        # A tokenizer kind Osprey does not read (Unigram, WordPiece): the expected outcome is one clear error.
        rep.ok("unsupported, clear error")
        rep.details["unsupported, clear error"].append({"stderr": stderr.strip()[-500:]})
        return rep, elapsed
    if code != 0 or len(out_lines) != len(lines):
        rep.bad("process", {"exit": code, "lines_in": len(lines), "lines_out": len(out_lines),
                            "stderr_tail": stderr[-3000:]})
    else:
        rep.ok("process")

    for i, exp in enumerate(expect):
        kind = exp[0]
        if i >= len(out_lines):
            rep.counts["no output line"] += 1
            continue
        try:
            got = json.loads(out_lines[i])
            if not isinstance(got, dict):
                raise ValueError("not an object")
        except ValueError as e:
            rep.bad("protocol", {"line": i, "input": lines[i][:500], "output": out_lines[i][:500], "error": str(e)})
            continue
        if i in bad_at:
            (rep.ok if "error" in got else rep.bad)("bad line rejected", {"input": exp[1], "output": got})
            continue
        if kind == "text":
            _, text, ast_, ref_ids, ref_err = exp
            if ref_err is not None:
                (rep.ok if "error" in got else rep.bad)("text error", {"text": text, "python": ref_err, "osprey": got})
                continue
            if "error" in got:
                rep.bad("text unexpected error", {"text": text, "add_special_tokens": ast_, "osprey": got["error"]})
                continue
            ids = got.get("ids")
            if ids == ref_ids:
                rep.ok("text ids")
            else:
                j = first_diff(ids or [], ref_ids)
                rep.bad("text ids", {"text": text, "add_special_tokens": ast_, "first_diff": j,
                                     "python_tokens": tokens_around(tok, ref_ids, j),
                                     "osprey_tokens": tokens_around(tok, ids or [], j),
                                     "python_ids": ref_ids[max(0, j - 4): j + 8],
                                     "osprey_ids": (ids or [])[max(0, j - 4): j + 8],
                                     "python_len": len(ref_ids), "osprey_len": len(ids or [])})
            try:
                ref_dec = tok.decode(ids)
            except Exception as e:  # noqa: BLE001 - osprey returned ids transformers cannot decode
                ref_dec = "<python decode failed: " + err(e) + ">"
            if got.get("decoded") == ref_dec:
                rep.ok("decode")
            else:
                dec = got.get("decoded") or ""
                j = first_diff(dec, ref_dec)
                rep.bad("decode", {"ids": ids[:200] if ids else ids, "first_diff": j,
                                   "python": ref_dec[max(0, j - 30): j + 60], "osprey": dec[max(0, j - 30): j + 60]})
        elif kind == "chat":
            _, conv, _, ref, ref_err = exp
            if ref_err is not None:
                (rep.ok if "error" in got else rep.bad)("chat error", {"conversation": conv, "python": ref_err,
                                                                      "osprey": got})
                continue
            if "error" in got:
                rep.bad("chat unexpected error", {"conversation": conv, "osprey": got["error"]})
                continue
            ref_text, ref_ids = ref
            text = got.get("text")
            if text == ref_text:
                rep.ok("chat text")
            else:
                j = first_diff(text or "", ref_text)
                rep.bad("chat text", {"conversation": conv, "first_diff": j,
                                      "python": ref_text[max(0, j - 60): j + 120],
                                      "osprey": (text or "")[max(0, j - 60): j + 120]})
            ids = got.get("ids")
            if ids == ref_ids:
                rep.ok("chat ids")
            elif text == ref_text:  # only meaningful when the texts agree
                j = first_diff(ids or [], ref_ids)
                rep.bad("chat ids", {"text": ref_text[:2000], "first_diff": j,
                                     "python_tokens": tokens_around(tok, ref_ids, j),
                                     "osprey_tokens": tokens_around(tok, ids or [], j)})
    return rep, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--osprey", required=True, help="the osprey executable")
    ap.add_argument("--tokenizers", default=None, help="folder of tokenizer folders (each with tokenizer.json)")
    ap.add_argument("--texts", type=int, default=600)
    ap.add_argument("--chats", type=int, default=120)
    ap.add_argument("--seed", type=int, default=20251124)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--only", default=None)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--show", type=int, default=5)
    ap.add_argument("--keep-env", action="store_true")
    args = ap.parse_args()

    out_dir = os.environ.get("OUT") or os.path.abspath("tokenizer_check_out")
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ)
    if not args.keep_env:
        env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")

    rng = random.Random(args.seed)
    started = time.time()
    base = package_texts(rng, args.texts)
    print(f"collected {len(base)} texts from installed packages in {time.time() - started:.1f}s", flush=True)

    folders = {}
    if args.tokenizers:
        for n in sorted(os.listdir(args.tokenizers)):
            d = os.path.join(args.tokenizers, n)
            if os.path.isfile(os.path.join(d, "tokenizer.json")):
                folders[n] = d
    workdir = tempfile.mkdtemp(prefix="osprey-tokcheck-")
    if not args.no_train:
        try:
            t0 = time.time()
            train_pool = base + [random_text(random.Random(args.seed + i), []) for i in range(300)]
            folders.update(train_tokenizers(train_pool, workdir, rng))
            print(f"trained {sum(1 for n in folders if n.startswith('trained_'))} tokenizers in "
                  f"{time.time() - t0:.1f}s", flush=True)
        except Exception:  # noqa: BLE001 - the real tokenizers are still checked
            traceback.print_exc()
    if args.only:
        keep = set(args.only.split(","))
        folders = {k: v for k, v in folders.items() if k in keep}
    if not folders:
        raise SystemExit("no tokenizers: pass --tokenizers DIR and/or leave training on")

    reports, summary = [], {}
    details_path = os.path.join(out_dir, "tokenizer_check_details.txt")
    with open(details_path, "w", encoding="utf-8") as details:
        for name, folder in folders.items():
            trng = random.Random(f"{args.seed}-{name}")
            try:
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained(folder)
                specials = sorted(tok.get_added_vocab())
                specials = specials[:40] + trng.sample(specials, min(40, len(specials)))
                texts = build_texts(trng, args.texts, base, specials)
                pool = [t for t in texts if t.strip()]
                chats = [random_conversation(trng, pool) for _ in range(args.chats)]
                rep, elapsed = check_tokenizer(name, folder, texts, chats, args, env)
            except Exception as e:  # noqa: BLE001 - one tokenizer failing must not stop the others
                traceback.print_exc()
                rep, elapsed = Report(name, args.show), 0.0
                rep.bad("script", {"error": err(e), "trace": traceback.format_exc()[-3000:]})
            reports.append((rep, elapsed))
            summary[name] = {"counts": dict(rep.counts), "seconds": round(elapsed, 2), "folder": folder}
            details.write(f"==================== {name} ({folder}) {elapsed:.1f}s\n")
            for k in sorted(rep.counts):
                details.write(f"  {k}: {rep.counts[k]}\n")
            for kind, items in rep.details.items():
                for d in items:
                    details.write(f"--- {kind}\n{json.dumps(d, ensure_ascii=False, indent=1)[:6000]}\n")
            details.flush()
            print(f"{name}: {rep.mismatches} mismatches, {elapsed:.1f}s", flush=True)
    with open(os.path.join(out_dir, "tokenizer_check_summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)

    cols = ["text ids", "decode", "chat text", "chat ids", "chat error", "text unexpected error",
            "chat unexpected error", "bad line rejected"]
    header = ["tokenizer"] + [c.replace("unexpected error", "unexp.err") for c in cols] + ["other", "s"]
    rows = [header]
    for rep, elapsed in reports:
        row = [rep.name]
        for c in cols:
            okc, bad = rep.counts.get(c + " ok", 0), rep.counts.get(c + " MISMATCH", 0)
            row.append(f"{bad}/{okc + bad}" if okc + bad else "-")
        other = sum(v for k, v in rep.counts.items() if k.endswith("MISMATCH") and k[: -len(" MISMATCH")] not in cols)
        row += [str(other + rep.counts.get("no output line", 0)), f"{elapsed:.1f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print(f"\ndetails: {details_path}\nmismatches/checked per kind:")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    sys.exit(1 if any(rep.mismatches or rep.counts.get("no output line") for rep, _ in reports) else 0)


if __name__ == "__main__":
    main()
