#!/usr/bin/env bash
# CPU timing of LoRA's shared A-product (docs/kernels.md, "LoRA: one A-product per shared input"): `osprey sft` on a
# random float32 Qwen2-shaped model with the 0.5B's layer widths (hidden 896, 14 heads / 2 KV heads, intermediate 4864),
# LAYERS layers (default 2) and the tiny byte tokenizer of tests/fixtures/parity/qwen2 (vocab 256), LoRA r8 all-linear,
# --lora_dropout 0, batch 1 x 256 tokens, STEPS steps; groups on (default) and off (OSPREY_FUSED_LORA=0), ROUNDS times
# alternately. Prints the mean tokens/s of each run after its first logging window. Needs /usr/bin/python3 with torch.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/tmp/osprey-lora-bench}; LAYERS=${LAYERS:-2}; STEPS=${STEPS:-12}; ROUNDS=${ROUNDS:-2}
mkdir -p "$W/model"
cp tests/fixtures/parity/qwen2/tokenizer.json tests/fixtures/parity/qwen2/tokenizer_config.json tests/fixtures/parity/qwen2/chat_template.jinja "$W/model/"
/usr/bin/python3 - "$W" "$LAYERS" <<'PY'
import json, struct, sys, random
import torch
w, layers = sys.argv[1], int(sys.argv[2])
h, heads, kv, inter, vocab = 896, 14, 2, 4864, 256
d = h // heads
cfg = json.load(open("tests/fixtures/parity/qwen2/config.json"))
cfg.update(hidden_size=h, num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter, num_hidden_layers=layers,
           layer_types=["full_attention"] * layers, max_position_embeddings=4096, vocab_size=vocab)
json.dump(cfg, open(f"{w}/model/config.json", "w"), indent=1)
g = torch.Generator().manual_seed(0)
t = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
for i in range(layers):
    p = f"model.layers.{i}."
    t.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
              p + "self_attn.q_proj.weight": (heads * d, h), p + "self_attn.q_proj.bias": (heads * d,),
              p + "self_attn.k_proj.weight": (kv * d, h), p + "self_attn.k_proj.bias": (kv * d,),
              p + "self_attn.v_proj.weight": (kv * d, h), p + "self_attn.v_proj.bias": (kv * d,),
              p + "self_attn.o_proj.weight": (h, heads * d), p + "mlp.gate_proj.weight": (inter, h),
              p + "mlp.up_proj.weight": (inter, h), p + "mlp.down_proj.weight": (h, inter)})
header, blobs, off = {}, [], 0
for name, shape in t.items():
    x = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape, generator=g) * 0.02
    b = x.numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
hb = json.dumps(header).encode(); hb += b" " * (-len(hb) % 8)
with open(f"{w}/model/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hb))); f.write(hb)
    for b in blobs: f.write(b)
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had".split()
with open(f"{w}/data.jsonl", "w") as f:
    for _ in range(64):
        text = " ".join(random.choice(words) for _ in range(200))
        f.write(json.dumps({"messages": [{"role": "user", "content": text[:200]}, {"role": "assistant", "content": text}]}) + "\n")
PY
run() {
  rm -rf "$W/out"
  ./osprey sft --model "$W/model" --dataset "$W/data.jsonl" --max_length 256 --truncation_strategy right --max_steps "$STEPS" \
    --logging_steps 3 --save_strategy no --device cpu --torch_dtype float32 --output_dir "$W/out" --add_version false \
    --lora_rank 8 --lora_alpha 32 --lora_dropout 0 --target_modules all-linear --lr_scheduler_type constant \
    --dataset_shuffle false > "$W/log.txt" 2>&1 || { tail -5 "$W/log.txt"; exit 1; }
  /usr/bin/python3 -c "
import json, sys
rows = [json.loads(l) for l in open('$W/out/logging.jsonl') if '\"tokens_per_second\"' in l]
s = [r['tokens_per_second'] for r in rows[1:]]
print(f'$1: {sum(s) / len(s):.1f} tokens/s (last loss {rows[-1][\"loss\"]:.4f})')"
}
for r in $(seq "$ROUNDS"); do
  run "shared A-product (default)"
  OSPREY_FUSED_LORA=0 run "per-module A-products (OSPREY_FUSED_LORA=0)"
done
