#!/usr/bin/python3
"""Writes a Qwen2 model with the shapes of Qwen2.5-0.5B (hidden 896, 24 layers, 14 heads / 2 KV heads, intermediate
4864, vocab 151936, tied embeddings) and random bf16 weights, with numpy only (tools/make_bench_model.py needs
transformers; CPU CI machines have Debian's numpy). Usage: make_cpu_bench_model.py OUT_DIR TOKENIZER_DIR [LAYERS] [--gptq]

--gptq writes the same weights with every decoder projection rounded to a 4-bit GPTQ checkpoint ("gptq" v1 format,
group size 32, symmetric: zero 8, scale = the group's signed absmax / -8, code = clamp(round(w / scale) + 8, 0, 15),
which is ggml's q4_0 grid); embeddings, norms and biases stay bf16. Speed benchmarks only: no calibration.

--tiny writes hidden 64, 4 heads / 2 KV heads, intermediate 128 over the same vocabulary: a model whose step is
mostly the host's work per token (the structured-output and hand-out measurements of benchmarks/session17-cpu.md)."""
import json
import os
import shutil
import struct
import sys

import numpy as np


def bf16_bits(a):
    # float32 -> bfloat16 with round-to-nearest-even, as torch's .to(bfloat16) does (no NaNs here)
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_float(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def main():
    out, tok = sys.argv[1], sys.argv[2]
    args = [a for a in sys.argv[3:] if not a.startswith("--")]
    layers = int(args[0]) if args else 24
    gptq = "--gptq" in sys.argv
    h, nh, kv, inter, vocab = (64, 4, 2, 128, 151936) if "--tiny" in sys.argv else (896, 14, 2, 4864, 151936)
    hd = h // nh
    rng = np.random.default_rng(0)
    tensors = {}

    dtypes = {}

    def rand(name, *shape, scale=0.02):
        w = rng.standard_normal(shape, dtype=np.float32) * scale
        if gptq and len(shape) == 2 and name.startswith("model.layers."):
            quantize(name[: -len(".weight")], bf16_float(bf16_bits(w)))
        else:
            tensors[name] = bf16_bits(w)

    def quantize(layer, w):
        out_f, in_f = w.shape
        g = w.reshape(out_f, in_f // 32, 32)
        idx = np.abs(g).argmax(axis=2)
        amax = np.take_along_axis(g, idx[..., None], axis=2)[..., 0]            # signed value of largest magnitude
        scale = (amax / -8.0).astype(np.float16)                                 # [out, groups]
        inv = np.where(scale == 0, 0, 1.0 / scale.astype(np.float32))
        q = np.clip(np.round(g * inv[..., None]) + 8, 0, 15).astype(np.uint32).reshape(out_f, in_f)
        qt = q.T.reshape(in_f // 8, 8, out_f)                                    # down the input dimension
        qweight = np.zeros((in_f // 8, out_f), np.uint32)
        for j in range(8):
            qweight |= qt[:, j, :] << (4 * j)
        zeros = np.full((in_f // 32, out_f // 8), 0, np.uint32)
        for j in range(8):
            zeros |= np.uint32(7) << (4 * j)                                     # v1 stores zero − 1 = 7
        tensors[layer + ".qweight"] = qweight.view(np.int32)
        tensors[layer + ".qzeros"] = zeros.view(np.int32)
        tensors[layer + ".scales"] = np.ascontiguousarray(scale.T)
        tensors[layer + ".g_idx"] = (np.arange(in_f) // 32).astype(np.int32)

    def ones(name, n):
        tensors[name] = bf16_bits(np.ones(n, np.float32))

    rand("model.embed_tokens.weight", vocab, h)
    for i in range(layers):
        p = f"model.layers.{i}."
        rand(p + "self_attn.q_proj.weight", nh * hd, h)
        rand(p + "self_attn.q_proj.bias", nh * hd)
        rand(p + "self_attn.k_proj.weight", kv * hd, h)
        rand(p + "self_attn.k_proj.bias", kv * hd)
        rand(p + "self_attn.v_proj.weight", kv * hd, h)
        rand(p + "self_attn.v_proj.bias", kv * hd)
        rand(p + "self_attn.o_proj.weight", h, nh * hd)
        rand(p + "mlp.gate_proj.weight", inter, h)
        rand(p + "mlp.up_proj.weight", inter, h)
        rand(p + "mlp.down_proj.weight", h, inter)
        ones(p + "input_layernorm.weight", h)
        ones(p + "post_attention_layernorm.weight", h)
    ones("model.norm.weight", h)

    os.makedirs(out, exist_ok=True)
    header, offset = {}, 0
    for name, t in tensors.items():
        n = t.nbytes
        kind = {np.dtype(np.uint16): "BF16", np.dtype(np.int32): "I32", np.dtype(np.float16): "F16"}[t.dtype]
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = os.path.join(out, "model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors.values():
            f.write(t.tobytes())
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    config = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=h, num_hidden_layers=layers,
                  num_attention_heads=nh, num_key_value_heads=kv, intermediate_size=inter, vocab_size=vocab,
                  max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                  torch_dtype="bfloat16", hidden_act="silu", bos_token_id=151643, eos_token_id=151645)
    if gptq:
        config["quantization_config"] = dict(quant_method="gptq", bits=4, group_size=32, desc_act=False, sym=True,
                                             checkpoint_format="gptq")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok, name), os.path.join(out, name))
    print(f"wrote {out}: {sum(t.size for t in tensors.values()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
