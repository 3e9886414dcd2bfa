"""Writes a tiny Qwen2-architecture model (hidden 32, 2 layers, vocab 151936, float32 random weights, no torch
needed) to OUT, so that a decode step costs little and the host work around it (constrained-decoding masks)
dominates. Usage: make_tiny_random_model.py OUT"""
import json, os, struct, random, array, sys
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
random.seed(0)
H, L, I, V, NH, KV = 32, 2, 64, 151936, 4, 2
hd = H // NH
def rnd(n, s=0.02):
    a = array.array('f', (random.gauss(0, s) for _ in range(n))); return a
t = {}
t["model.embed_tokens.weight"] = ([V, H], rnd(V*H))
for i in range(L):
    p = f"model.layers.{i}."
    t[p+"self_attn.q_proj.weight"] = ([H, H], rnd(H*H)); t[p+"self_attn.q_proj.bias"] = ([H], rnd(H))
    t[p+"self_attn.k_proj.weight"] = ([KV*hd, H], rnd(KV*hd*H)); t[p+"self_attn.k_proj.bias"] = ([KV*hd], rnd(KV*hd))
    t[p+"self_attn.v_proj.weight"] = ([KV*hd, H], rnd(KV*hd*H)); t[p+"self_attn.v_proj.bias"] = ([KV*hd], rnd(KV*hd))
    t[p+"self_attn.o_proj.weight"] = ([H, H], rnd(H*H))
    t[p+"mlp.gate_proj.weight"] = ([I, H], rnd(I*H)); t[p+"mlp.up_proj.weight"] = ([I, H], rnd(I*H))
    t[p+"mlp.down_proj.weight"] = ([H, I], rnd(H*I))
    t[p+"input_layernorm.weight"] = ([H], array.array('f', [1.0]*H)); t[p+"post_attention_layernorm.weight"] = ([H], array.array('f', [1.0]*H))
t["model.norm.weight"] = ([H], array.array('f', [1.0]*H))
hdr = {}; off = 0; blobs = []
for k, (shape, a) in t.items():
    b = a.tobytes(); hdr[k] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off+len(b)]}; off += len(b); blobs.append(b)
h = json.dumps(hdr).encode(); h += b" " * ((8 - len(h) % 8) % 8)
with open(OUT + "/model.safetensors.tmp", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); [f.write(b) for b in blobs]
cfg = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=H, num_hidden_layers=L, num_attention_heads=NH,
  num_key_value_heads=KV, intermediate_size=I, vocab_size=V, tie_word_embeddings=True, max_position_embeddings=4096,
  rope_theta=1000000.0, rms_norm_eps=1e-6, bos_token_id=151643, eos_token_id=151645, hidden_act="silu", torch_dtype="float32")
json.dump(cfg, open(OUT + "/config.json", "w"), indent=1)
os.replace(OUT + "/model.safetensors.tmp", OUT + "/model.safetensors")
