#!/usr/bin/env python3
"""A tiny text tokenizer for the tiny parity models, and transformers' greedy chat generations with it.

The parity models (tests/fixtures/parity/<family>, written by tools/make_parity_fixtures.py) have vocab_size 256 and
generation_config ids pad 0, bos 1, eos 2. This script:
  1. trains ONE deterministic char-level BPE (not byte-level: bytes alone would need all 256 ids) on the English text
     below with the `tokenizers` library: Metaspace pre-tokenizer/decoder (prepend_scheme "first"), an ASCII alphabet
     plus tab, newline and "\u2581", merges up to exactly 256 ids, and the special tokens
        0 <|endoftext|> (pad)   1 <|im_start|> (bos)   2 <|im_end|> (eos)   3 <unk>
     so they agree with every family's generation_config.json (checked; the script stops if they do not);
  2. wraps it in PreTrainedTokenizerFast with a ChatML chat template and save_pretrained()s it into every family
     folder (tokenizer.json, tokenizer_config.json, chat_template.jinja / whatever this transformers writes). The
     model files (config.json, generation_config.json, model.safetensors, golden.*) are hashed before and after and
     must stay byte-identical;
  3. reloads each folder with PreTrainedTokenizerFast (not AutoTokenizer: transformers 5 picks a model-specific
     class such as Qwen2Tokenizer from config.json's model_type and rebuilds the pipeline from its own defaults,
     which does not fit this char-level tokenizer) and AutoModelForCausalLM (float32, CPU, eager attention) and, for a few
     conversations, renders apply_chat_template(add_generation_prompt=True), encodes it (add_special_tokens=False,
     as apply_chat_template(tokenize=True) does), runs model.generate(greedy, max_new_tokens=16), once more with
     repetition_penalty=1.3, and writes tests/fixtures/parity/<family>/infer_golden.json:
        {"family", "transformers", "tokenizers", "torch", "vocab_size", "special_tokens": {...},
         "tokenizer_files": {name: sha256}, "batched_matches_single": bool,
         "cases": [{"name", "messages", "settings": {"max_new_tokens", "do_sample", "temperature",
                    "repetition_penalty"}, "prompt", "prompt_ids", "new_ids", "finish": "eos"|"length",
                    "response": decode(new_ids, skip_special_tokens=True)}],
         "tokenizer_checks": [{"text", "ids", "ids_no_special", "offsets" (code points), "tokens", "decode",
                               "decode_skip_special"}]}
     "settings.repetition_penalty" is null when off. "batched_matches_single" says whether the greedy cases give the
     same tokens generated together (left padding) as alone; Osprey's batch infer may batch them.

Run on the GPU machine (CPU only, well under a minute; no network):
    python3 tools/make_infer_fixtures.py --parity tests/fixtures/parity
then commit tests/fixtures/parity/*/{infer_golden.json,tokenizer.json,tokenizer_config.json,...} (the script
prints the files it wrote).
"""
import argparse
import hashlib
import json
import os
import sys
import traceback

FAMILIES = ["llama", "llama3", "mistral", "phi3", "qwen2", "qwen3", "gemma2", "gemma3_text"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]  # ids 0, 1, 2, 3
PAD, BOS, EOS = 0, 1, 2
VOCAB = 256
MAX_NEW = 16
MODEL_FILES = ["config.json", "generation_config.json", "model.safetensors", "golden.json", "golden.safetensors"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Training text, written for this fixture. Plain ASCII on purpose: the alphabet is fixed below and anything
# outside it becomes <unk>.
TRAINING_TEXT = """
The old lighthouse keeper climbed the stairs every evening to light the lamp above the rocks.
She counted the steps as she went: there were one hundred and twelve of them, and she knew each one.
From the top she could see the fishing boats coming home, their lights bobbing on the dark water.
On calm nights the sea was quiet and the gulls slept on the harbour wall.
On stormy nights the wind howled around the tower and the waves threw spray against the windows.
The keeper kept a notebook where she wrote the weather, the ships she saw and the time the lamp was lit.
Her cat sat by the stove and watched the kettle, waiting for a saucer of warm milk.
In the morning she walked down to the village to buy bread, cheese, apples and a newspaper.
The baker always asked about the ships, and she always told him about the boats she had seen.
Children from the school sometimes visited the tower, and she showed them the great glass lens.
They asked how far the light could reach, and she told them that sailors could see it from twenty miles away.
user: Hello, can you help me with a question?
assistant: Of course. What would you like to know?
user: What is the capital of France?
assistant: The capital of France is Paris.
user: How many days are there in a week?
assistant: There are seven days in a week.
system: You are a helpful assistant. Answer clearly and briefly.
user: Please write a short poem about the sea.
assistant: The sea is wide, the sea is deep, it rocks the little boats to sleep.
user: Thank you! That is lovely.
assistant: You are welcome. Is there anything else I can help you with?
Numbers such as 1, 2, 3, 10, 42 and 100 appear in text, and so do dates like 2024-05-01.
Questions end with a question mark? Exclamations end with an exclamation mark! Lists use commas, and; semicolons.
The quick brown fox jumps over the lazy dog while the lazy dog sleeps in the sun.
Good morning, good afternoon and good evening are common greetings in English.
When the keeper retired, the village held a party in the square with music, lanterns and cake.
She gave her notebook to the new keeper and told him to look after the cat as well as the light.
"""
ALPHABET = sorted(set(
    "abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "0123456789"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "\t\n\u2581"
))

PROMPTS = [
    ("greeting", [{"role": "user", "content": "Hello, can you help me?"}]),
    ("system_question", [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "What is the capital of France?"}]),
    ("multi_turn", [{"role": "user", "content": "Name a colour."},
                    {"role": "assistant", "content": "Blue."},
                    {"role": "user", "content": "Another one?"}]),
]
PENALTY_CASE = ("greeting_repetition_penalty", PROMPTS[0][1], 1.3)

TOKENIZER_CHECKS = [
    "", " ", "Hello world", "Hello world!", " leading space", "two  spaces and trailing  ", "new\nline\ttab\n\n",
    "The quick brown fox jumps over the lazy dog.", "UPPER lower 12345 ?!",
    "Unknown letters: caf\u00e9, \u4e2d\u6587, \U0001F600 end", "\u2581literal metaspace",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "text <|endoftext|> more <unk> here",
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=ALPHABET, limit_alphabet=len(ALPHABET), show_progress=False)
    lines = [line for line in TRAINING_TEXT.strip().split("\n")]
    tok.train_from_iterator(lines, trainer=trainer)
    for i, s in enumerate(SPECIALS):
        if tok.token_to_id(s) != i:
            raise SystemExit(f"special token {s} got id {tok.token_to_id(s)}, wanted {i}")
    if tok.get_vocab_size(with_added_tokens=True) != VOCAB:
        raise SystemExit(f"trained vocab has {tok.get_vocab_size(with_added_tokens=True)} ids, wanted exactly {VOCAB}: "
                         "add training text")
    missing = [c for c in ALPHABET if tok.token_to_id(c) is None]
    if missing:
        raise SystemExit(f"alphabet characters missing from the vocab: {missing!r}")
    return tok


def wrap(tok):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<unk>", chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False, model_max_length=VOCAB)


def check_generation_config(folder):
    with open(os.path.join(folder, "generation_config.json")) as f:
        gen = json.load(f)
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    problems = []
    if cfg.get("vocab_size") != VOCAB:
        problems.append(f"vocab_size {cfg.get('vocab_size')} != {VOCAB}")
    for key, want in (("pad_token_id", PAD), ("bos_token_id", BOS), ("eos_token_id", EOS)):
        got = gen.get(key)
        if got != want and not (isinstance(got, list) and want in got):
            problems.append(f"generation_config {key} is {got}, the tokenizer has {want}")
    return problems, cfg


def special_tokens(tok):
    return {k: {"content": getattr(tok, k + "_token"), "id": getattr(tok, k + "_token_id")}
            for k in ("bos", "eos", "pad", "unk")}


def tokenizer_checks(tok):
    out = []
    for text in TOKENIZER_CHECKS:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(tok.encode(text, add_special_tokens=True))
        out.append({"text": text, "ids": ids, "ids_no_special": list(enc["input_ids"]),
                    "offsets": [[int(a), int(b)] for a, b in enc["offset_mapping"]],
                    "tokens": tok.convert_ids_to_tokens(ids),
                    "decode": tok.decode(ids), "decode_skip_special": tok.decode(ids, skip_special_tokens=True)})
    return out


def generate(model, ids, penalty):
    import torch

    kwargs = dict(max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=PAD, eos_token_id=EOS,
                  temperature=None, top_p=None, top_k=None)
    if penalty is not None:
        kwargs["repetition_penalty"] = penalty
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         **kwargs)
    return out[0, len(ids):].tolist()


def generate_batched(model, prompts):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, do_sample=False,
                         pad_token_id=PAD, eos_token_id=EOS, temperature=None, top_p=None, top_k=None)
    rows = []
    for i in range(len(prompts)):
        toks = out[i, width:].tolist()
        if EOS in toks:
            toks = toks[: toks.index(EOS) + 1]
        rows.append(toks)
    return rows


def run_family(folder, fast, versions):
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    before = {f: sha256(os.path.join(folder, f)) for f in MODEL_FILES if os.path.exists(os.path.join(folder, f))}
    written = fast.save_pretrained(folder)
    after = {f: sha256(os.path.join(folder, f)) for f in before}
    if before != after:
        raise RuntimeError(f"save_pretrained changed model files in {folder}: "
                           f"{[f for f in before if before[f] != after[f]]}")

    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    if len(tok) != VOCAB:
        raise RuntimeError(f"reloaded tokenizer has {len(tok)} ids, wanted {VOCAB}")
    for text in TOKENIZER_CHECKS:
        if list(tok.encode(text)) != list(fast.encode(text)):
            raise RuntimeError(f"reloaded tokenizer ({type(tok).__name__}) encodes {text!r} differently from the "
                               "trained one")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    max_pos = model.config.max_position_embeddings

    cases = []
    runs = [(name, msgs, None) for name, msgs in PROMPTS] + [PENALTY_CASE]
    for name, messages, penalty in runs:
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = list(tok.encode(prompt, add_special_tokens=False))
        if len(ids) + MAX_NEW > max_pos:
            raise RuntimeError(f"{name}: prompt of {len(ids)} tokens + {MAX_NEW} exceeds {max_pos} positions")
        with torch.no_grad():
            new = generate(model, ids, penalty)
        cases.append({
            "name": name, "messages": messages,
            "settings": {"max_new_tokens": MAX_NEW, "do_sample": False, "temperature": 0,
                         "repetition_penalty": penalty},
            "prompt": prompt, "prompt_ids": ids, "new_ids": new,
            "finish": "eos" if new and new[-1] == EOS and len(new) <= MAX_NEW else "length",
            "response": tok.decode(new, skip_special_tokens=True),
        })
    greedy = [c for c in cases if c["settings"]["repetition_penalty"] is None]
    with torch.no_grad():
        batched = generate_batched(model, [c["prompt_ids"] for c in greedy])
    batched_ok = batched == [c["new_ids"] for c in greedy]
    penalty_case = cases[-1]
    plain = next(c for c in greedy if c["messages"] == penalty_case["messages"])
    tokenizer_files = sorted(os.path.basename(p) for p in written if os.path.isfile(p))
    golden = {
        "family": os.path.basename(folder.rstrip("/")), **versions,
        "vocab_size": len(tok), "special_tokens": special_tokens(tok),
        "tokenizer_files": {f: sha256(os.path.join(folder, f)) for f in tokenizer_files},
        "batched_matches_single": batched_ok,
        "penalty_changes_output": penalty_case["new_ids"] != plain["new_ids"],
        "cases": cases,
        "tokenizer_checks": tokenizer_checks(tok),
    }
    path = os.path.join(folder, "infer_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return golden, tokenizer_files + ["infer_golden.json"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parity", default=os.path.join(ROOT, "tests", "fixtures", "parity"))
    ap.add_argument("--only", default=None, help="comma-separated family names")
    args = ap.parse_args()

    import tokenizers
    import torch
    import transformers

    torch.manual_seed(0)
    versions = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "torch": torch.__version__}
    names = args.only.split(",") if args.only else FAMILIES
    for name in names:
        problems, _ = check_generation_config(os.path.join(args.parity, name))
        if problems:
            raise SystemExit(f"{name}: {'; '.join(problems)}")

    fast = wrap(train_tokenizer())
    print("vocab:", " ".join(repr(t) for t, _ in sorted(fast.get_vocab().items(), key=lambda kv: kv[1])))
    rows, failed = [], False
    for name in names:
        folder = os.path.join(args.parity, name)
        try:
            golden, files = run_family(folder, fast, versions)
            print(f"{name}: wrote {', '.join(files)}")
            for c in golden["cases"]:
                print(f"  {c['name']}: {len(c['prompt_ids'])} prompt ids -> {c['new_ids']} ({c['finish']}) "
                      f"{c['response']!r}")
            distinct = len({t for c in golden["cases"] for t in c["new_ids"]})
            rows.append([name, str(len(golden["cases"])), str(golden["batched_matches_single"]),
                         str(golden["penalty_changes_output"]), str(distinct),
                         ",".join(c["finish"] for c in golden["cases"])])
        except Exception as e:  # noqa: BLE001 - the other families still get their fixtures
            traceback.print_exc()
            failed = True
            rows.append([name, "FAILED", f"{type(e).__name__}: {e}"[:80], "", "", ""])
    header = ["family", "cases", "batched==single", "penalty changes", "distinct new ids", "finish"]
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
