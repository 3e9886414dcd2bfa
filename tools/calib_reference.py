#!/usr/bin/python3
"""NumPy references for Osprey's calibrated exports (run with Debian's /usr/bin/python3 and python3-numpy).

Written from the papers and the published checkpoint layouts, not from Osprey:
  GPTQ  Frantar et al. 2022, Algorithm 1, with the reference implementation's steps (dead inputs, act-order,
        dampening by 1% of the mean diagonal, upper Cholesky factor of H^-1, lazy blocks of 128, per-group min/max grid).
        Two storage choices are part of the format Osprey writes and are mirrored here: scales are rounded to float16
        (never below 2^-24) before use, and asymmetric zero points are at least 1 (GPTQ v1 stores zero - 1 unsigned).
  RTN   round-to-nearest on the same grids (GPTQ's; AutoAWQ's asymmetric 4-bit), the baseline of the error comparisons.
  unpack  GPTQModel/AutoGPTQ "gptq" (v1) qweight/qzeros/scales/g_idx, AutoAWQ GEMM qweight/qzeros/scales and
        float8_e4m3fn weights with weight_scale / weight_scale_inv, dequantized to a float32 folder.

  calib_reference.py gptq DIR OUT IN BITS GROUP SYM DESC   reads DIR/w.f32 [OUT, IN] and DIR/x.f32 [n, IN]; writes
                                                            DIR/h.f64 (H = 2 X^T X / n), DIR/ref_q.f32, DIR/ref_codes.i32,
                                                            DIR/ref_gidx.i32 and DIR/ref_rtn.f32
  calib_reference.py awq_rtn DIR OUT IN GROUP              reads DIR/w.f32, writes DIR/ref_rtn.f32 (AutoAWQ's grid)
  calib_reference.py unpack QDIR OUT                       dequantizes QDIR's quantized layers into the folder OUT
"""
import json
import os
import struct
import sys

import numpy as np


def f16_scale(x):
    return np.maximum(x.astype(np.float16).astype(np.float64), 2.0 ** -24)


def grid(x, maxq, sym):
    """Per-row min/max grid over x [rows, n] (the range contains 0): returns scale, zero (float64 [rows])."""
    xmin = np.minimum(x.min(axis=1), 0)
    xmax = np.maximum(x.max(axis=1), 0)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)
    xmin = np.where(empty, -1.0, xmin)
    xmax = np.where(empty, 1.0, xmax)
    scale = f16_scale((xmax - xmin) / maxq)
    zero = np.full_like(scale, (maxq + 1) // 2) if sym else np.clip(np.round(-xmin / scale), 1, maxq)
    return scale, zero


def quantize(w, scale, zero, maxq):
    q = np.clip(np.round(w / scale) + zero, 0, maxq)
    return q, scale * (q - zero)


def gptq(W, H, bits, groupsize, sym, actorder, percdamp=0.01, blocksize=128):
    W = W.astype(np.float64).copy()
    H = H.astype(np.float64).copy()
    rows, columns = W.shape
    maxq = 2 ** bits - 1
    gs = columns if groupsize <= 0 else groupsize
    scale, zero = grid(W, maxq, sym)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if actorder:
        perm = np.argsort(-np.diag(H), kind="stable")
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = np.argsort(perm)
    H[np.diag_indices(columns)] += percdamp * np.mean(np.diag(H))
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper Cholesky factor of H^-1
    Q = np.zeros_like(W)
    codes = np.zeros_like(W)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if groupsize > 0 and col % gs == 0:
                scale, zero = grid(W[:, col:col + gs], maxq, sym)
            w = W1[:, i]
            d = Hinv1[i, i]
            q, dq = quantize(w, scale, zero, maxq)
            Q[:, col] = dq
            codes[:, col] = q
            err = (w - dq) / d
            W1[:, i:] -= np.outer(err, Hinv1[i, i:])
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    g_idx = np.arange(columns) // gs
    if actorder:
        Q, codes, g_idx = Q[:, invperm], codes[:, invperm], g_idx[invperm]
    return Q, codes, g_idx


def rtn_gptq_grid(W, bits, groupsize, sym):
    W = W.astype(np.float64)
    maxq = 2 ** bits - 1
    gs = W.shape[1] if groupsize <= 0 else groupsize
    out = np.zeros_like(W)
    for c in range(0, W.shape[1], gs):
        s, z = grid(W[:, c:c + gs], maxq, sym)
        out[:, c:c + gs] = quantize(W[:, c:c + gs], s[:, None], z[:, None], maxq)[1]
    return out


def rtn_awq(W, groupsize):
    """AutoAWQ's pseudo_quantize_tensor (4 bits, zero point), scales rounded to float16 as stored."""
    rows, cols = W.shape
    gs = cols if groupsize <= 0 else groupsize
    g = W.astype(np.float32).reshape(rows, cols // gs, gs)
    mx, mn = g.max(axis=2, keepdims=True), g.min(axis=2, keepdims=True)
    scales = (np.maximum(mx - mn, 1e-5) / 15).astype(np.float16).astype(np.float32)
    zeros = np.clip(-np.round(mn / scales), 0, 15)
    q = np.clip(np.round(g / scales) + zeros, 0, 15)
    return ((q - zeros) * scales).reshape(rows, cols)


# --- safetensors and the published layouts ----------------------------------------------------------------------

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8, "F8_E4M3": np.uint8}


def read_folder(folder):
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
                a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                a = np.frombuffer(raw, dtype=DTYPES[e["dtype"]])
            tensors[key] = (e["dtype"], a.reshape(e["shape"]))
    return tensors


def unpack_rows(packed, bits):
    """GPTQ: int32 [rows, cols] holding 32/bits values per word down each column (value j at bits bits*j) -> [rows*32/bits, cols]."""
    per = 32 // bits
    u = packed.astype(np.int64) & 0xFFFFFFFF
    shifts = (np.arange(per) * bits).reshape(1, per, 1)
    return ((u[:, None, :] >> shifts) & ((1 << bits) - 1)).reshape(packed.shape[0] * per, packed.shape[1])


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i of an AWQ GEMM word holds column 8c + AWQ_ORDER[i]


def unpack_awq(packed):
    u = packed.astype(np.int64) & 0xFFFFFFFF
    rows, words = packed.shape
    out = np.zeros((rows, words * 8), dtype=np.int64)
    for i in range(8):
        out[:, AWQ_ORDER[i]::8] = (u >> (4 * i)) & 15
    return out


def e4m3fn(codes):
    c = codes.astype(np.int64)
    e, m = (c >> 3) & 15, c & 7
    mag = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7))
    mag = np.where((e == 15) & (m == 7), np.nan, mag)
    return np.where(c & 0x80, -mag, mag)


def unpack(qdir, out):
    with open(os.path.join(qdir, "config.json")) as f:
        config = json.load(f)
    qc = config.pop("quantization_config")
    method = qc["quant_method"]
    t = read_folder(qdir)
    dense = {}
    layers = 0
    for key, (dtype, a) in t.items():
        if method in ("gptq", "awq") and key.endswith(".qweight"):
            layer = key[:-len(".qweight")]
            scales = t[layer + ".scales"][1].astype(np.float32)
            if method == "gptq":
                bits = qc["bits"]
                q = unpack_rows(a, bits)                                              # [in, out]
                z = unpack_rows(t[layer + ".qzeros"][1].T, bits).T + 1                 # v1 stores zero - 1
                g = t[layer + ".g_idx"][1].astype(np.int64)
            else:
                q = unpack_awq(a)
                z = unpack_awq(t[layer + ".qzeros"][1])
                g = np.arange(q.shape[0]) // qc["group_size"]
            w = ((q - z[g]) * scales[g]).astype(np.float32).T                        # [out, in]
            dense[layer + ".weight"] = w
            layers += 1
        elif method in ("fp8", "fbgemm_fp8") and dtype == "F8_E4M3":
            layer = key[:-len(".weight")]
            v = e4m3fn(a).astype(np.float32)
            if layer + ".weight_scale_inv" in t:
                br, bc = qc["weight_block_size"]
                s = t[layer + ".weight_scale_inv"][1].astype(np.float32)
                s = np.repeat(np.repeat(s, br, axis=0), bc, axis=1)[:v.shape[0], :v.shape[1]]
            else:
                s = t[layer + ".weight_scale"][1].astype(np.float32)
                s = s.reshape(-1, 1) if s.size == v.shape[0] and s.size > 1 else s.reshape(())
            dense[key] = (v * s).astype(np.float32)
            layers += 1
        elif not any(key.endswith(x) for x in (".qzeros", ".scales", ".g_idx", ".weight_scale", ".weight_scale_inv")):
            dense[key] = a.astype(np.float32)
    os.makedirs(out, exist_ok=True)
    header, blobs, offset = {}, [], 0
    for key in sorted(dense):
        blob = np.ascontiguousarray(dense[key], dtype="<f4").tobytes()
        header[key] = {"dtype": "F32", "shape": list(dense[key].shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((-len(text)) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    config["torch_dtype"] = "float32"
    if "dtype" in config:
        config["dtype"] = "float32"
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(json.dumps({"layers": layers, "method": method}))


def main():
    a = sys.argv[1:]
    if a and a[0] == "gptq" and len(a) == 8:
        d, out_f, in_f, bits, group = a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5])
        sym, desc = a[6] == "1", a[7] == "1"
        W = np.fromfile(os.path.join(d, "w.f32"), dtype="<f4").reshape(out_f, in_f).astype(np.float64)
        X = np.fromfile(os.path.join(d, "x.f32"), dtype="<f4").reshape(-1, in_f).astype(np.float64)
        H = 2.0 * X.T @ X / X.shape[0]
        H.astype("<f8").tofile(os.path.join(d, "h.f64"))
        Q, codes, g_idx = gptq(W, H, bits, group, sym, desc)
        Q.astype("<f4").tofile(os.path.join(d, "ref_q.f32"))
        codes.astype("<i4").tofile(os.path.join(d, "ref_codes.i32"))
        g_idx.astype("<i4").tofile(os.path.join(d, "ref_gidx.i32"))
        rtn_gptq_grid(W, bits, group, sym).astype("<f4").tofile(os.path.join(d, "ref_rtn.f32"))
    elif a and a[0] == "awq_rtn" and len(a) == 5:
        d, out_f, in_f, group = a[1], int(a[2]), int(a[3]), int(a[4])
        W = np.fromfile(os.path.join(d, "w.f32"), dtype="<f4").reshape(out_f, in_f)
        rtn_awq(W, group).astype("<f4").tofile(os.path.join(d, "ref_rtn.f32"))
    elif a and a[0] == "unpack" and len(a) == 3:
        unpack(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
