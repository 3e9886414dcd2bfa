#!/usr/bin/env bash
# Issue 22's benchmark, on the GPU machine (one or two device calls of at most 600 s each), from the repository root:
#   sft    LoRA fine-tuning of a Qwen2-VL with Qwen2-VL-7B's shapes and random bf16 weights
#          (tools/make_vl_bench_model.py), rows with one 448x448 and one 1024x768 PNG each
#          (tools/make_vl_bench_data.py, a new pair of pictures per row), batch 4, LoRA r8 alpha 32 on the language
#          model's linear layers, gradient checkpointing on, AdamW lr 1e-4 constant, WARM untimed + STEPS timed
#          steps: `osprey sft --torch_dtype bfloat16 --device cuda` against transformers + PEFT
#          (tools/vl_sft_reference.py) in the same call. Tokens/s count every non-pad token (image tokens
#          included) in both; peak memory is polled with nvidia-smi for both (the same meter). Target: osprey
#          >= 1.5x HF's tokens/s at <= its memory.
#   serve  `osprey deploy` on the same model, image chat at CONC concurrent requests (default "1 32"), NEW new
#          tokens each (greedy, ignore_eos), one picture per request as a data URL (tools/vl_serve_bench.py).
# STAGES="sft serve" (the default) runs both; STAGES=sft or STAGES=serve splits them over two calls when one call
# would pass 600 s (the model is rebuilt on a fresh machine: about 2 minutes). QUICK=1 shrinks the model to
# 2 language layers and 2 vision blocks (a check of the whole pipeline in a few minutes; its figures mean nothing).
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz (tokenizers/qwen3); carry .dist.
# Writes details to $OUT; the table comes last.
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers/qwen3 ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
STAGES=${STAGES:-sft serve}
WARM=${WARM:-2}; STEPS=${STEPS:-6}; BATCH=${BATCH:-4}
CONC=${CONC:-1 32}; NEW=${NEW:-128}
if [[ ${QUICK:-0} == 1 ]]; then M=/tmp/qwen2-vl-quick; SHAPE="--layers 2 --vision_depth 2"; else M=/tmp/qwen2-vl-7b; SHAPE=""; fi
D=/tmp/vlb-data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"

if [[ ! -f $M/.complete ]]; then
  echo "== building $M"
  rm -rf $M
  python3 tools/make_vl_bench_model.py --tokenizer /tmp/t/tokenizers/qwen3 --out $M $SHAPE > "$OUT/model-build.txt" 2>&1
  tail -3 "$OUT/model-build.txt"
  [[ -f $M/.complete ]] || { echo "model build failed (see model-build.txt)"; exit 1; }
fi
[[ -f $D/train.jsonl ]] || python3 tools/make_vl_bench_data.py --out $D --rows 48
cp $M/config.json "$OUT/model-config.json"

# peak NAME CMD...: runs CMD (stdout+stderr in $OUT/NAME.txt); peak GPU memory in MiB above the idle reading -> $OUT/NAME.peak
peak() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem-$name.log & local pid=$!
  "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  kill $pid; sleep 0.3
  echo $(( $(sort -n /tmp/mem-$name.log | tail -1) - $(sort -n /tmp/mem-$name.log | head -1) )) > "$OUT/$name.peak"
  echo "$name rc=$rc peak +$(cat "$OUT/$name.peak") MiB"
  return $rc
}

if [[ " $STAGES " == *" sft "* ]]; then
  echo "== sft: transformers + PEFT (tools/vl_sft_reference.py), batch $BATCH, $WARM + $STEPS steps"
  peak hf-sft python3 tools/vl_sft_reference.py --model $M --dataset $D/train.jsonl --batch $BATCH --warmup $WARM \
    --steps $STEPS --lora_rank 8 --lora_alpha 32 --lora_dropout 0.05 --lr 1e-4 --weight_decay 0.1 --out "$OUT/hf-sft.json"
  tail -3 "$OUT/hf-sft.txt" | cut -c1-400
  echo "== sft: osprey, batch $BATCH, $WARM + $STEPS steps"
  rm -rf /tmp/vlb-osprey
  peak osprey-sft $OSP sft --model $M --dataset $D/train.jsonl --train_type lora --lora_rank 8 --lora_alpha 32 \
    --lora_dropout 0.05 --target_modules all-linear --per_device_train_batch_size $BATCH --gradient_accumulation_steps 1 \
    --max_steps $((WARM + STEPS)) --logging_steps 1 --learning_rate 1e-4 --lr_scheduler_type constant --warmup_ratio 0 \
    --weight_decay 0.1 --max_grad_norm 1.0 --gradient_checkpointing true --max_length 4096 --save_strategy no \
    --output_dir /tmp/vlb-osprey --add_version false --device cuda --torch_dtype bfloat16
  grep -v "^Train" "$OUT/osprey-sft.txt" | tail -8
  cp /tmp/vlb-osprey/logging.jsonl "$OUT/osprey-sft-logging.jsonl" 2>/dev/null
fi

if [[ " $STAGES " == *" serve "* ]]; then
  echo "== serve: osprey deploy, image chat at $CONC concurrent requests, $NEW new tokens each"
  peak osprey-serve python3 tools/vl_serve_bench.py --osprey $OSP --model $M --data $D --concurrency $CONC \
    --max_tokens $NEW --out "$OUT/vl_serve.json" -- --device cuda --torch_dtype bfloat16
  tail -4 "$OUT/osprey-serve.txt"
fi

echo; echo "== summary ($(head -1 "$OUT/gpu.txt" | cut -d, -f1)$([[ ${QUICK:-0} == 1 ]] && echo ', QUICK model: figures mean nothing'))"
python3 - "$OUT" "$WARM" "$STEPS" "$BATCH" <<'PY' | tee "$OUT/summary.txt"
import json, os, re, sys
out, warm, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def peak(n):
    p = os.path.join(out, n + ".peak")
    return int(open(p).read()) / 1024 if os.path.exists(p) else float("nan")
hf_path, log_path = os.path.join(out, "hf-sft.json"), os.path.join(out, "osprey-sft-logging.jsonl")
if os.path.exists(hf_path) or os.path.exists(log_path):
    print(f"LoRA SFT, Qwen2-VL 7B shapes, batch {batch}, 448x448 + 1024x768 per row, {steps} timed steps after {warm}")
    print(f"{'stack':<18}{'tokens/row':>11}{'tokens/s':>10}{'vs HF':>7}{'s/step':>8}{'peak GiB':>10}{'mem vs HF':>10}{'own GiB':>9}{'last loss':>10}")
    hf = json.load(open(hf_path)) if os.path.exists(hf_path) else None
    hf_tps = hf["tokens_per_s"] if hf else float("nan")
    if hf:
        print(f"{'transformers+PEFT':<18}{'/'.join(map(str, hf['tokens_per_row'])):>11}{hf_tps:>10.0f}{1:>7.2f}"
              f"{hf['ms_per_step'] / 1000:>8.2f}{peak('hf-sft'):>10.2f}{1:>10.2f}{hf['peak_mem_reserved_gib']:>9.2f}{hf['loss_last']:>10.4f}")
    if os.path.exists(log_path):
        recs = [json.loads(l) for l in open(log_path) if '"tokens_per_second"' in l]
        by_step = {r["global_step"]: r for r in recs}
        timed = [by_step[s] for s in range(warm + 1, warm + steps + 1) if s in by_step]
        text = open(os.path.join(out, "osprey-sft.txt")).read()
        enc = re.search(r"encoded (\d+) rows: (\d+) samples, (\d+) tokens", text)
        per_row = f"{int(enc.group(3)) / int(enc.group(2)):.0f}" if enc else "?"
        if len(timed) == steps and warm in by_step:
            span = timed[-1]["elapsed_seconds"] - by_step[warm]["elapsed_seconds"]
            prev = [by_step[warm]] + timed[:-1]
            tokens = sum(r["tokens_per_second"] * (r["elapsed_seconds"] - p["elapsed_seconds"]) for r, p in zip(timed, prev))
            tps = tokens / span
            print(f"{'osprey':<18}{per_row:>11}{tps:>10.0f}{tps / hf_tps:>7.2f}{span / steps:>8.2f}{peak('osprey-sft'):>10.2f}"
                  f"{peak('osprey-sft') / peak('hf-sft'):>10.2f}{max(r['memory_gib'] for r in recs):>9.2f}{timed[-1]['loss']:>10.4f}")
            verdict = "met" if tps >= 1.5 * hf_tps and peak("osprey-sft") <= peak("hf-sft") else "NOT met"
            print(f"target (>= 1.50x tokens/s at <= peak memory): {verdict}")
        else:
            print(f"osprey: logging.jsonl has no records for steps {warm}..{warm + steps} (see osprey-sft.txt)")
    print("peak GiB: nvidia-smi, above the idle reading; own GiB: torch.cuda.max_memory_reserved (HF) / "
          "logging.jsonl memory_gib (osprey)")
serve = os.path.join(out, "vl_serve.json")
if os.path.exists(serve):
    s = json.load(open(serve))
    print(f"\nosprey deploy, image chat (one 448x448 or 1024x768 picture per request), {s['max_tokens']} new tokens each")
    print(f"{'requests':>8}{'out tok/s':>11}{'req/s':>8}{'TTFT mean s':>13}{'TTFT max s':>12}{'tok/s/req':>11}{'prompt tokens':>15}")
    for r in s["rounds"]:
        print(f"{r['concurrency']:>8}{r['output_tokens_per_s']:>11.1f}{r['requests_per_s']:>8.2f}{r['ttft_mean_s'] or float('nan'):>13.3f}"
              f"{r['ttft_max_s'] or float('nan'):>12.3f}{r['decode_tok_s_per_request'] or float('nan'):>11.1f}"
              f"{'/'.join(map(str, r['prompt_tokens'])):>15}" + ("" if not r["errors"] and not r["short_replies"] else "  FAILURES"))
PY
