#!/usr/bin/env python3
"""Reference implementation of bitsandbytes' published quantization formats, written from its documented algorithms
(bitsandbytes functional.py: quantize_4bit / dequantize_4bit, create_normal_map's NF4 table, the FP4 table,
create_dynamic_map, quantize_blockwise; LLM.int8's row-wise absmax) and transformers' serialization of them
(QuantState.as_dict(packed=True), Linear8bitLt's weight + SCB). Standard library only (no numpy on the test machines):
float32 arithmetic is emulated exactly by rounding every result of a double operation to float32, which is exact for
one +, -, * or / of float32 operands.

  quant_reference.py check SRC QDIR      quantize SRC's dense linear weights as QDIR's quantization_config says and
                                         compare with QDIR's tensors code for code; prints a JSON summary
  quant_reference.py dequantize QDIR OUT write QDIR's weights dequantized, every tensor float32, as a dense folder
  quant_reference.py pack METHOD SRC QDIR DENSE [key=value ...]
                                         pre-quantized checkpoints (GPTQ, AWQ GEMM, FP8): draw random codes, zero points
                                         and scales for SRC's decoder linear layers, pack them in METHOD's published
                                         layout into QDIR (with its quantization_config), and write the weights those
                                         codes stand for, float32, as the dense folder DENSE (see pack_* below)
"""
import json
import math
import os
import random
import struct
import sys
from array import array


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


# NF4: bitsandbytes' get_4bit_type("nf4") values (normal quantiles scaled to [-1, 1]).
NF4 = [f32(v) for v in [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]]
# FP4: sign bit 3; magnitudes [0, 0.0625, 8, 12, 4, 6, 2, 3] divided by their maximum 12.
_FP4_RAW = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0]
FP4 = [f32(v / 12.0) for v in _FP4_RAW] + [-f32(v / 12.0) for v in _FP4_RAW]
# The CUDA kernel's decisions: NF4 compares with the midpoints of neighbouring values (strictly greater -> upper code);
# FP4 compares the magnitude with its literal thresholds and keeps the sign bit.
NF4_T = [f32((NF4[i] + NF4[i + 1]) / 2) for i in range(15)]
FP4_T = [f32(v) for v in [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333]]
FP4_MAG = [0, 1, 6, 7, 4, 5, 2, 3]


def code_nf4(s):
    if s != s:
        return 0
    return sum(1 for t in NF4_T if s > t)


def code_fp4(s):
    if s != s:
        return 0
    sign = 8 if s < 0 else 0
    m = abs(s)
    return FP4_MAG[sum(1 for t in FP4_T if m > t)] + sign


def block_absmax(values, bs):
    n = len(values)
    return [max((abs(v) for v in values[i:i + bs]), default=0.0) for i in range(0, n, bs)]


def reciprocal(a):
    return f32(1.0 / a) if a != 0 else math.inf


def scaled(x, r):
    p = x * r
    return f32(p) if p == p else p


def quantize_4bit(values, qtype, bs=64):
    """values: float32 list (flattened weight). Returns (packed bytes list, float32 absmax list)."""
    n = len(values)
    absmax = block_absmax(values, bs)
    code = code_nf4 if qtype == "nf4" else code_fp4
    codes = []
    for b, a in enumerate(absmax):
        r = reciprocal(a)
        for x in values[b * bs:(b + 1) * bs]:
            codes.append(code(scaled(x, r)))
    # Zero padding to a whole block, as the kernel loads it; only (n + 1) // 2 bytes are kept.
    codes += [code(scaled(0.0, reciprocal(absmax[-1])))] * ((-len(codes)) % 2)
    packed = [(codes[2 * k] << 4) | codes[2 * k + 1] for k in range((n + 1) // 2)]
    return packed, absmax


def dequantize_4bit(packed, absmax, table, n, bs=64):
    out = []
    for k, byte in enumerate(packed):
        for c in (byte >> 4, byte & 15):
            i = len(out)
            if i < n:
                out.append(f32(table[c] * absmax[i // bs]))
    return out


def linspace_f32(start, end, steps):
    # torch.linspace for float32: start + step * i for the first half, end - step * (steps - 1 - i) for the rest.
    start, end = f32(start), f32(end)
    step = f32(f32(end - start) / (steps - 1))
    half = steps // 2
    return [f32(start + f32(step * i)) if i < half else f32(end - f32(step * (steps - 1 - i))) for i in range(steps)]


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted float32 values."""
    data = []
    for i in range(7):
        b = linspace_f32(0.1, 1.0, 2 ** i + 1)
        means = [f32(f32(b[j] + b[j + 1]) / 2) for j in range(2 ** i)]
        scale = f32(10.0 ** (i - 6))
        data += [f32(scale * m) for m in means]
        data += [f32(-scale * m) for m in means]
    data += [0.0, 1.0]
    return sorted(data)


def quantize_blockwise(values, code, bs=256):
    mids = [f32(f32(code[i] + code[i + 1]) * 0.5) for i in range(255)]
    absmax = block_absmax(values, bs)
    out = []
    for b, a in enumerate(absmax):
        r = reciprocal(a)
        for x in values[b * bs:(b + 1) * bs]:
            s = scaled(x, r)
            out.append(0 if s != s else sum(1 for m in mids if s > m))
    return out, absmax


def dequantize_blockwise(codes, absmax, code, bs=256):
    return [f32(code[c] * absmax[i // bs]) for i, c in enumerate(codes)]


def double_quant(absmax):
    offset = f32(math.fsum(absmax) / len(absmax))
    code = dynamic_map()
    q, absmax2 = quantize_blockwise([f32(a - offset) for a in absmax], code)
    return q, absmax2, code, offset


def quantize_int8(rows):
    cbs, scbs = [], []
    for row in rows:
        scb = max(abs(v) for v in row)
        if scb == 0:
            cbs.append([0] * len(row))
        else:
            s = f32(127.0 / scb)
            cbs.append([int(round(f32(v * s))) for v in row])
        scbs.append(scb)
    return cbs, scbs


def dequantize_int8(cb, scb, cols):
    inv = f32(7.874015718698502e-3)
    return [f32(f32(cb[i] * scb[i // cols]) * inv) for i in range(len(cb))]


# --- safetensors -------------------------------------------------------------------------------------------------

_FMT = {"F32": "f", "U8": "B", "I8": "b", "F16": "e", "I64": "q", "I32": "i", "F8_E4M3": "B"}


def read_safetensors(folder):
    tensors = {}
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("model") and name.endswith(".safetensors")):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        for key, e in header.items():
            if key == "__metadata__":
                continue
            raw = data[e["data_offsets"][0]:e["data_offsets"][1]]
            if e["dtype"] == "BF16":
                vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in struct.unpack("<%dH" % (len(raw) // 2), raw)]
            else:
                fmt = _FMT[e["dtype"]]
                vals = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
            tensors[key] = (e["dtype"], e["shape"], vals)
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        shape, vals = tensors[key]
        blob = array("f", vals).tobytes()
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(path + ".tmp", path)


def quant_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    return config, config["quantization_config"]


def quantized_layers(q):
    layers = {}
    for key in q:
        for t in ("nf4", "fp4"):
            suffix = ".weight.quant_state.bitsandbytes__" + t
            if key.endswith(suffix):
                layers[key[:-len(suffix)]] = t
        if key.endswith(".SCB"):
            layers[key[:-4]] = "int8"
    return layers


def state_of(q, layer, qtype):
    return json.loads(bytes(q[layer + ".weight.quant_state.bitsandbytes__" + qtype][2]).decode())


def dequantize_layer(q, layer, qtype):
    if qtype == "int8":
        shape = q[layer + ".weight"][1]
        return shape, dequantize_int8(q[layer + ".weight"][2], q[layer + ".SCB"][2], shape[1])
    st = state_of(q, layer, qtype)
    n = st["shape"][0] * st["shape"][1]
    absmax = q[layer + ".weight.absmax"][2]
    if "nested_blocksize" in st:
        code = q[layer + ".weight.nested_quant_map"][2]
        deq = dequantize_blockwise(absmax, q[layer + ".weight.nested_absmax"][2], code, st["nested_blocksize"])
        offset = f32(st["nested_offset"])
        absmax = [f32(a + offset) for a in deq]
    return st["shape"], dequantize_4bit(q[layer + ".weight"][2], absmax, q[layer + ".weight.quant_map"][2], n, st["blocksize"])


def check(src, qdir):
    dense = read_safetensors(src)
    q = read_safetensors(qdir)
    _, qc = quant_config(qdir)
    failures, compared = [], {"codes": 0, "absmax": 0}
    map_diff = 0.0

    def expect(what, got, want):
        if list(got) != list(want):
            bad = sum(1 for a, b in zip(got, want) if a != b) + abs(len(got) - len(want))
            failures.append("%s: %d of %d differ (first: %s vs reference %s)" % (
                what, bad, len(want), next((a for a, b in zip(got, want) if a != b), None), next((b for a, b in zip(got, want) if a != b), None)))

    layers = quantized_layers(q)
    for layer, qtype in sorted(layers.items()):
        dtype, shape, w = dense[layer + ".weight"]
        if qtype == "int8":
            cb, scb = quantize_int8([w[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])])
            expect(layer + ".weight (int8 codes)", q[layer + ".weight"][2], [c for row in cb for c in row])
            expect(layer + ".SCB", q[layer + ".SCB"][2], scb)
            compared["codes"] += len(w)
            continue
        st = state_of(q, layer, qtype)
        if st["quant_type"] != qtype or st["blocksize"] != 64 or st["shape"] != shape or q[layer + ".weight"][1] != [(len(w) + 1) // 2, 1]:
            failures.append("%s: quant state %s does not describe a %s weight of shape %s" % (layer, st, qtype, shape))
        packed, absmax = quantize_4bit(w, qtype)
        expect(layer + ".weight (packed)", q[layer + ".weight"][2], packed)
        expect(layer + ".weight.quant_map", q[layer + ".weight.quant_map"][2], NF4 if qtype == "nf4" else FP4)
        compared["codes"] += len(w)
        if qc.get("bnb_4bit_use_double_quant"):
            codes, absmax2, code, offset = double_quant(absmax)
            if f32(st["nested_offset"]) != offset:
                failures.append("%s: nested_offset %r vs reference %r" % (layer, st["nested_offset"], offset))
            expect(layer + ".weight.absmax (nested codes)", q[layer + ".weight.absmax"][2], codes)
            expect(layer + ".weight.nested_absmax", q[layer + ".weight.nested_absmax"][2], absmax2)
            got_map = q[layer + ".weight.nested_quant_map"][2]
            map_diff = max(map_diff, max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(got_map, code)))
        else:
            expect(layer + ".weight.absmax", q[layer + ".weight.absmax"][2], absmax)
        compared["absmax"] += len(absmax)
    print(json.dumps({"layers": len(layers), "values": compared["codes"], "blocks": compared["absmax"],
                      "nested_map_max_rel_diff": map_diff, "failures": failures[:20]}))


def dequantize(qdir, out):
    config, _ = quant_config(qdir)
    q = read_safetensors(qdir)
    layers = quantized_layers(q)
    tensors = {}
    for layer, qtype in layers.items():
        tensors[layer + ".weight"] = dequantize_layer(q, layer, qtype)
    for key, (dtype, shape, vals) in q.items():
        layer = key[:key.find(".weight")] if ".weight" in key else key[:key.rfind(".")]
        if layer in layers and key != layer + ".bias":
            continue  # the packed weight, absmax, quant maps, quant state, SCB, weight_format
        tensors[key] = (shape, vals)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    del config["quantization_config"]
    config["torch_dtype"] = "float32"
    if "dtype" in config:
        config["dtype"] = "float32"
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(json.dumps({"layers": len(layers), "tensors": len(tensors)}))


# --- pre-quantized checkpoints: GPTQ, AWQ (GEMM), FP8 ------------------------------------------------------------
# Written from the published layouts (AutoGPTQ/GPTQModel's QuantLinear pack(), AutoAWQ's WQLinear_GEMM.from_linear(),
# the FP8 checkpoints' model cards): codes are drawn at random, packed here with Python integers as a bit stream, and
# the dense weight each layer stands for is computed from the codes themselves, never by unpacking.

def to_i32(u):
    return u - (1 << 32) if u >= (1 << 31) else u


def pack_stream(values, bits):
    """GPTQ: 32 consecutive values fill `bits` int32 words as one little-endian bit stream (value j at bits
    bits*j .. bits*j+bits-1), so a 3-bit value may span two words; returns the words."""
    assert len(values) % 32 == 0
    words = []
    for b in range(0, len(values), 32):
        acc = 0
        for j, v in enumerate(values[b:b + 32]):
            acc |= (v & ((1 << bits) - 1)) << (bits * j)
        words += [to_i32((acc >> (32 * w)) & 0xFFFFFFFF) for w in range(bits)]
    return words


def unpack_stream(words, bits):
    out = []
    for b in range(0, len(words), bits):
        acc = sum((w & 0xFFFFFFFF) << (32 * i) for i, w in enumerate(words[b:b + bits]))
        out += [(acc >> (bits * j)) & ((1 << bits) - 1) for j in range(32)]
    return out


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i of an AWQ GEMM word holds column 8c + AWQ_ORDER[i]


def pack_awq(row):
    return [to_i32(sum((row[8 * c + AWQ_ORDER[i]] & 15) << (4 * i) for i in range(8)) & 0xFFFFFFFF) for c in range(len(row) // 8)]


def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def e4m3fn(b):
    """float8_e4m3fn: sign bit 7, exponent bits 6-3 (bias 7), mantissa bits 2-0, no infinities, 0x7F/0xFF NaN."""
    sign = -1.0 if b & 0x80 else 1.0
    e, m = (b >> 3) & 15, b & 7
    if e == 15 and m == 7:
        return math.nan
    return sign * (m / 8.0 * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7))


def decoder_linears(dense):
    return sorted(k[:-len(".weight")] for k, (_, shape, _) in dense.items()
                  if k.startswith("model.layers.") and k.endswith(".weight") and len(shape) == 2)


def std_of(vals):
    return math.sqrt(sum(v * v for v in vals) / len(vals)) or 0.02


def pack_gptq(rnd, w, out_f, in_f, opt):
    bits, gs = int(opt.get("bits", 4)), int(opt.get("group_size", 128))
    desc, sym, fmt = opt.get("desc_act", "0") == "1", opt.get("sym", "1") == "1", opt.get("format", "gptq")
    gsz = in_f if gs == -1 else gs
    groups = in_f // gsz
    g_idx = [k // gsz for k in range(in_f)]
    if desc:  # act-order: columns are quantized in a permuted order and get their groups in that order
        perm = list(range(in_f))
        rnd.shuffle(perm)
        for i, k in enumerate(perm):
            g_idx[k] = i // gsz
    top = (1 << bits) - 1
    q = [[rnd.randint(0, top) for _ in range(out_f)] for _ in range(in_f)]              # [in][out]
    lo = 1 if fmt == "gptq" else 0  # v1 stores zero-1, so a zero of 0 would wrap (AutoGPTQ's known asym flaw)
    z = [[(1 << (bits - 1)) if sym else rnd.randint(lo, top) for _ in range(out_f)] for _ in range(groups)]
    s = [[f16(std_of(w) * rnd.uniform(0.5, 1.5) / (1 << (bits - 1))) for _ in range(out_f)] for _ in range(groups)]
    stored_z = [[v - 1 if fmt == "gptq" else v for v in row] for row in z]
    qweight = [0] * (in_f * bits // 32 * out_f)
    for n in range(out_f):
        col = pack_stream([q[k][n] for k in range(in_f)], bits)
        assert unpack_stream(col, bits) == [q[k][n] for k in range(in_f)]
        for r, word in enumerate(col):
            qweight[r * out_f + n] = word
    qzeros = [word for row in stored_z for word in pack_stream(row, bits)]
    deq = [f32((q[k][n] - z[g_idx[k]][n]) * s[g_idx[k]][n]) for n in range(out_f) for k in range(in_f)]
    tensors = {"qweight": ("I32", [in_f * bits // 32, out_f], qweight),
               "qzeros": ("I32", [groups, out_f * bits // 32], qzeros),
               "scales": ("F16", [groups, out_f], [v for row in s for v in row]),
               "g_idx": ("I32", [in_f], g_idx)}
    config = {"quant_method": "gptq", "bits": bits, "group_size": gs, "desc_act": desc, "sym": sym,
              "checkpoint_format": fmt, "damp_percent": 0.01, "true_sequential": True}
    return tensors, deq, config


def pack_awq_layer(rnd, w, out_f, in_f, opt):
    gs = int(opt.get("group_size", 128))
    groups = in_f // gs
    q = [[rnd.randint(0, 15) for _ in range(out_f)] for _ in range(in_f)]
    z = [[rnd.randint(0, 15) for _ in range(out_f)] for _ in range(groups)]
    s = [[f16(std_of(w) * rnd.uniform(0.5, 1.5) / 8) for _ in range(out_f)] for _ in range(groups)]
    deq = [f32((q[k][n] - z[k // gs][n]) * s[k // gs][n]) for n in range(out_f) for k in range(in_f)]
    tensors = {"qweight": ("I32", [in_f, out_f // 8], [x for row in q for x in pack_awq(row)]),
               "qzeros": ("I32", [groups, out_f // 8], [x for row in z for x in pack_awq(row)]),
               "scales": ("F16", [groups, out_f], [v for row in s for v in row])}
    config = {"quant_method": "awq", "bits": 4, "group_size": gs, "zero_point": True, "version": opt.get("version", "gemm")}
    return tensors, deq, config


def pack_fp8(rnd, w, out_f, in_f, opt):
    block = [int(v) for v in opt["block"].split("x")] if "block" in opt else None

    def code():  # a spread of normal and subnormal magnitudes around 1, never NaN
        e = rnd.choice([0, 4, 5, 6, 7, 7, 8, 9])
        return (rnd.randint(0, 1) << 7) | (e << 3) | rnd.randint(0, 7)
    codes = [code() for _ in range(out_f * in_f)]
    if block:
        br, bc = block
        sr, sc = -(-out_f // br), -(-in_f // bc)
        scale = [f32(std_of(w) * rnd.uniform(0.5, 1.5)) for _ in range(sr * sc)]
        deq = [f32(e4m3fn(codes[r * in_f + c]) * scale[(r // br) * sc + c // bc]) for r in range(out_f) for c in range(in_f)]
        tensors = {"weight": ("F8_E4M3", [out_f, in_f], codes), "weight_scale_inv": ("F32", [sr, sc], scale)}
        config = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": block}
    else:
        scale = f32(std_of(w) * rnd.uniform(0.5, 1.5))
        deq = [f32(e4m3fn(c) * scale) for c in codes]
        tensors = {"weight": ("F8_E4M3", [out_f, in_f], codes), "weight_scale": ("F32", [], [scale]),
                   "input_scale": ("F32", [], [f32(0.5)])}
        config = {"quant_method": "fp8", "activation_scheme": "static"}
    return tensors, deq, config


def write_typed(path, tensors):
    header, blobs, offset = {}, [], 0
    for key in sorted(tensors):
        dtype, shape, vals = tensors[key]
        blob = struct.pack("<%d%s" % (len(vals), _FMT[dtype]), *vals)
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(path + ".tmp", path)


def pack(method, src, qdir, dense_dir, opt):
    rnd = random.Random(int(opt.get("seed", 17)))
    packer = {"gptq": pack_gptq, "awq": pack_awq_layer, "fp8": pack_fp8}[method]
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    dense = read_safetensors(src)
    qt, dt, qc = {}, {}, None
    layers = decoder_linears(dense)
    for key, (dtype, shape, vals) in dense.items():
        if key[:-len(".weight")] not in layers:
            qt[key] = ("F32", shape, vals)
            dt[key] = (shape, vals)
    for layer in layers:
        _, (out_f, in_f), w = dense[layer + ".weight"]
        tensors, deq, qc = packer(rnd, w, out_f, in_f, opt)
        for name, t in tensors.items():
            qt[layer + "." + name] = t
        dt[layer + ".weight"] = ([out_f, in_f], deq)
    for d in (qdir, dense_dir):
        os.makedirs(d, exist_ok=True)
    write_typed(os.path.join(qdir, "model.safetensors"), qt)
    write_safetensors(os.path.join(dense_dir, "model.safetensors"), dt)
    with open(os.path.join(dense_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    config["quantization_config"] = qc
    with open(os.path.join(qdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(json.dumps({"layers": len(layers), "quantization_config": qc}))


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "pack":
        pack(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], dict(a.split("=", 1) for a in sys.argv[6:]))
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "dequantize":
        dequantize(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
