#!/usr/bin/env bash
# The multi-GPU checks of issue 25 (code: issue 24), run from the repository root on a machine with 2, 4 or 8 GPUs:
#   bash tools/multi_gpu_check.sh                 # every part, on 2 and (where present) 4 and 8 GPUs
#   PART=correct|resume|scale|tp GPUS="2 4" SIZES="0.5b 7b" bash tools/multi_gpu_check.sh
# correct: float32, tiny qwen2 fixture: N ranks × batch 1 against 1 GPU × batch 1 × N accumulated micro-batches (the
#          same global batch and micro-batch shapes) for DP, ZeRO-2 and ZeRO-3. N = 2 should be bit-identical for DP
#          (NCCL sums two values once, as autograd accumulates); ZeRO-2/3 and N > 2 round differently (sharded grad
#          norm, the ring's summation order), so the largest relative loss difference is printed (expect < 1e-5).
# resume:  DP, ZeRO-2 and ZeRO-3 on N GPUs stopped at step 3 (checkpoint) and resumed must reproduce the uninterrupted losses.
# scale:   bf16 pt on 2048-token rows of random text, 0.5B- and 7B-shaped Qwen2 (tools/make_bench_model.py), LoRA and
#          full, DP / ZeRO-2 / ZeRO-3 / ZeRO-3 with optimizer offload, on 1 and N GPUs at the same per-GPU batch: tokens/s (all
#          ranks together, steps 6-25) and peak memory per GPU (nvidia-smi, the largest GPU). Target: DP ≥ 1.8× on 2
#          GPUs at 7B. Runs that do not fit print "failed" (e.g. 7B full DP: 16 bytes/parameter per GPU). dp_sync is DP
#          with OSPREY_OVERLAP_GRAD_REDUCE=0 (all-reduce after the backward pass): dp against it is what the overlap buys.
# tp:      tensor-parallel serving (osprey deploy/benchmark --tensor_parallel_size N): greedy replies of N GPUs against 1
#          GPU through the HTTP API (float32: the tiny fixture and the 0.5B/7B-shaped models; "equal" or where they first
#          differ), then bf16 decode speed of `osprey benchmark --concurrency 1 32` on 1 GPU (CUDA graphs on, and eager as
#          TP runs) and N GPUs; sizes whose KV heads N does not divide print the refusal. Also: more ranks than visible GPUs.
# Prints one table per part and writes them to $OUT/multi-gpu-*.txt (copy them into benchmarks/ with the machine).
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz (a real 151k vocabulary).
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=${OSP:-/tmp/osp/osprey-gpu/osprey}
HAVE=$(nvidia-smi -L | wc -l)
GPUS=${GPUS:-"2 4 8"}
SIZES=${SIZES:-"0.5b 7b"}
PART=${PART:-all}
PORT=29600
nextport() { PORT=$((PORT + 1)); echo $PORT; }

losses() { python3 -c 'import json,sys; print(" ".join(repr(json.loads(l)["loss"]) for l in open(sys.argv[1]) if "\"loss\"" in l))' "$1/logging.jsonl" 2>/dev/null; }
compare() { # $1 reference run dir, $2 run dir -> "bit-identical" or the largest relative difference
  python3 - "$1" "$2" <<'PY'
import json, sys
def losses(d):
    try: return [json.loads(l)["loss"] for l in open(d + "/logging.jsonl") if '"loss"' in l]
    except OSError: return []
a, b = losses(sys.argv[1]), losses(sys.argv[2])
if not a or len(a) != len(b): print(f"failed ({len(a)} vs {len(b)} logged steps)")
elif a == b: print("bit-identical")
else: print(f"max rel diff {max(abs(x - y) / abs(x) for x, y in zip(a, b)):.2e}")
PY
}

TINY="--model tests/fixtures/parity/qwen2 --dataset examples/datasets/messages.jsonl --max_steps 6 --per_device_train_batch_size 1 \
  --logging_steps 1 --save_steps 3 --device cuda --torch_dtype float32 --add_version false --load_from_cache_file false --learning_rate 1e-3"

if [[ $PART == all || $PART == correct ]]; then
  T="$OUT/multi-gpu-correctness.txt"; printf "%-6s %-10s %-6s %s\n" GPUs mode train result | tee "$T"
  for n in $GPUS; do
    (( n > HAVE )) && continue
    for train in lora full; do
      rm -rf /tmp/mg-one-$n-$train
      $OSP sft $TINY --train_type $train --gradient_accumulation_steps $n --output_dir /tmp/mg-one-$n-$train > /tmp/mg-one.log 2>&1
      for mode in dp zero2 zero3; do
        flag=""; [[ $mode != dp ]] && flag="--deepspeed $mode"
        d=/tmp/mg-$mode-$n-$train; rm -rf $d
        NPROC_PER_NODE=$n MASTER_PORT=$(nextport) $OSP sft $TINY --train_type $train --gradient_accumulation_steps 1 $flag --output_dir $d > $d.log 2>&1
        r=$(compare /tmp/mg-one-$n-$train $d); [[ $r == failed* ]] && r="$r: $(grep -m1 'osprey:.*not\|error' $d.log)"
        printf "%-6s %-10s %-6s %s\n" $n $mode $train "$r" | tee -a "$T"
      done
    done
  done
fi

if [[ $PART == all || $PART == resume ]]; then
  T="$OUT/multi-gpu-resume.txt"; printf "%-6s %-8s %s\n" GPUs mode "resumed vs whole" | tee "$T"
  for n in $GPUS; do
    (( n > HAVE )) && continue
    for mode in dp zero2 zero3; do
      flag=""; [[ $mode != dp ]] && flag="--deepspeed $mode"
      w=/tmp/mg-whole-$mode-$n; h=/tmp/mg-half-$mode-$n; rm -rf $w $h
      NPROC_PER_NODE=$n MASTER_PORT=$(nextport) $OSP sft $TINY --train_type full --gradient_accumulation_steps 1 $flag --output_dir $w > $w.log 2>&1
      cp -r $w $h; rm -rf $h/checkpoint-6
      NPROC_PER_NODE=$n MASTER_PORT=$(nextport) $OSP sft $TINY --train_type full --gradient_accumulation_steps 1 $flag --output_dir /tmp/mg-ignored \
        --resume_from_checkpoint $h/checkpoint-3 > $h.log 2>&1
      printf "%-6s %-8s %s\n" $n $mode "$(compare $w $h)" | tee -a "$T"
    done
  done
fi

peak_run() { # runs "$@" while polling every GPU; prints the largest per-GPU peak in MiB
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 200 > /tmp/mg-mem.log & local pid=$!
  "$@" > /tmp/mg-run.log 2>&1; local rc=$?
  kill $pid; sleep 0.3
  PEAK=$(awk -F', ' '{ if ($2 > m[$1]) m[$1] = $2 } END { for (i in m) if (m[i] > x) x = m[i]; print x + 0 }' /tmp/mg-mem.log)
  return $rc
}

if [[ $PART == all || $PART == scale ]]; then
  python3 - <<'PY'
import json, random
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
with open("/tmp/mg-rand.jsonl", "w") as f:
    for _ in range(2000):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(3000))}) + "\n")
PY
  T="$OUT/multi-gpu-scaling.txt"
  printf "%-5s %-5s %-14s %-5s %12s %8s %14s\n" size train mode GPUs tokens/s speedup peak_MiB/GPU | tee "$T"
  for size in $SIZES; do
    m=/tmp/mg-q$size; [[ -d $m ]] || python3 tools/make_bench_model.py --out $m --size $size 2>&1 | grep wrote
    cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $m/
    if [[ $size == 0.5b ]]; then batch="--per_device_train_batch_size 4 --gradient_checkpointing false"; else batch="--per_device_train_batch_size 1 --gradient_checkpointing true"; fi
    for train in lora full; do
      for mode in dp dp_sync zero2 zero3 zero3_offload; do
        # dp_sync: data parallel with the all-reduce after the backward pass (OSPREY_OVERLAP_GRAD_REDUCE=0), against dp's per-layer overlap
        flag=""; [[ $mode != dp && $mode != dp_sync ]] && flag="--deepspeed $mode"
        sync=(); [[ $mode == dp_sync ]] && sync=(OSPREY_OVERLAP_GRAD_REDUCE=0)
        base=""
        for n in 1 $GPUS; do
          (( n > HAVE )) && continue
          [[ $n == 1 && $mode != dp ]] && { base=$base1; continue; }
          d=/tmp/mg-scale; rm -rf $d
          launch=(); (( n > 1 )) && launch=(env "${sync[@]}" NPROC_PER_NODE=$n MASTER_PORT=$(nextport))
          peak_run "${launch[@]}" $OSP pt --model $m --dataset /tmp/mg-rand.jsonl --max_length 2048 --truncation_strategy right --max_steps 25 \
            --logging_steps 5 --save_strategy no --device cuda --torch_dtype bfloat16 --output_dir $d --add_version false \
            --gradient_accumulation_steps 1 --lr_scheduler_type constant --train_type $train $batch $flag
          tps=$(python3 -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]) if "tokens_per_second" in l]
s=[r["tokens_per_second"] for r in rows[1:]]
print(round(sum(s)/len(s)) if s else "failed")' $d/logging.jsonl 2>/dev/null || echo failed)
          [[ $n == 1 ]] && { base1=$tps; base=$tps; }
          sp="-"; [[ $tps != failed && ${base:-failed} != failed && -n $base ]] && sp=$(python3 -c "print(f'{$tps/$base:.2f}x')")
          printf "%-5s %-5s %-14s %-5s %12s %8s %14s\n" $size $train $mode $n "$tps" "$sp" "$PEAK" | tee -a "$T"
          [[ $tps == failed ]] && tail -3 /tmp/mg-run.log
        done
      done
    done
  done
fi
if [[ $PART == all || $PART == tp ]]; then
  # Greedy replies over HTTP: $1 model dir, $2 dtype, $3 tp size, $4 output file (one JSON reply text per line).
  tp_replies() {
    local log=/tmp/mg-tp-deploy.log url=""
    $OSP deploy --model $1 --device cuda --torch_dtype $2 --port 0 --max_model_len 512 --tensor_parallel_size $3 > $log 2>&1 & local pid=$!
    for _ in $(seq 600); do url=$(grep -o -m1 "http://127.0.0.1:[0-9]*" $log) && break; kill -0 $pid 2>/dev/null || break; sleep 0.5; done
    python3 - "$url" $4 <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, out = sys.argv[1], sys.argv[2]
prompts = [f"Question {i}: tell me about the number {i * 7}." for i in range(12)]
def ask(p):
    body = json.dumps({"prompt": p, "max_tokens": 48, "temperature": 0, "ignore_eos": True}).encode()
    req = urllib.request.Request(f"{url}/v1/completions", body, {"Content-Type": "application/json"})
    try: return json.load(urllib.request.urlopen(req, timeout=600))["choices"][0]["text"]
    except Exception as e: return f"ERROR {e}"
with ThreadPoolExecutor(12) as pool: replies = list(pool.map(ask, prompts))  # at once: rows of several lengths batched
open(out, "w").write("".join(json.dumps(r) + "\n" for r in replies))
PY
    kill -TERM $pid; wait $pid 2>/dev/null
    grep -m1 "does not divide\|needs .* GPUs\|rank .* exited\|killed" $log
  }
  same() { python3 -c 'import json,sys
a=[json.loads(l) for l in open(sys.argv[1])]; b=[json.loads(l) for l in open(sys.argv[2])]
bad=[i for i,(x,y) in enumerate(zip(a,b)) if x!=y]
print("failed" if not a or len(a)!=len(b) or any(t.startswith("ERROR") for t in a+b) else "equal" if not bad else f"{len(bad)} of {len(a)} replies differ (first: request {bad[0]})")' "$1" "$2"; }
  T="$OUT/multi-gpu-tp.txt"; printf "%-7s %-5s %s\n" model GPUs "greedy replies vs 1 GPU (float32)" | tee "$T"
  for size in tiny $SIZES; do
    if [[ $size == tiny ]]; then m=tests/fixtures/parity/qwen2; else
      m=/tmp/mg-q$size; [[ -d $m ]] || python3 tools/make_bench_model.py --out $m --size $size 2>&1 | grep wrote
      cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json $m/; fi
    tp_replies $m float32 1 /tmp/mg-tp-1.jsonl > /dev/null
    for n in $GPUS; do
      (( n > HAVE )) && continue
      why=$(tp_replies $m float32 $n /tmp/mg-tp-$n.jsonl)
      r=$(same /tmp/mg-tp-1.jsonl /tmp/mg-tp-$n.jsonl); [[ $r == failed ]] && r="failed: $why"
      printf "%-7s %-5s %s\n" $size $n "$r" | tee -a "$T"
    done
  done
  printf "\n%-5s %-5s %-6s %-9s %16s %17s\n" size GPUs graphs requests throughput_tok/s per_request_tok/s | tee -a "$T"
  for size in $SIZES; do
    m=/tmp/mg-q$size
    for n in 1 1e $GPUS; do
      [[ $n != 1* ]] && (( n > HAVE )) && continue
      tp=${n%e}; flags=""; graphs=on; [[ $n == 1e ]] && { flags="--enforce_eager"; graphs=off; }; (( tp > 1 )) && graphs=off
      $OSP benchmark --model $m --device cuda --torch_dtype bfloat16 --concurrency 1 32 --prompt_length 128 --max_new_tokens 128 \
        --tensor_parallel_size $tp $flags > /tmp/mg-tp-bench.log 2>&1
      rows=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9 { print $1, $7, $8 }' /tmp/mg-tp-bench.log)
      [[ -z $rows ]] && { printf "%-5s %-5s %-6s %s\n" $size $tp $graphs "failed: $(grep -m1 'osprey:.*\(not\|divide\|exited\)\|rror' /tmp/mg-tp-bench.log)" | tee -a "$T"; continue; }
      while read -r c thr per; do printf "%-5s %-5s %-6s %-9s %16s %17s\n" $size $tp $graphs $c $thr $per | tee -a "$T"; done <<< "$rows"
    done
  done
  # More ranks than visible GPUs: refused before anything starts.
  echo "one visible GPU, --tensor_parallel_size 2: $(CUDA_VISIBLE_DEVICES=0 $OSP deploy --model tests/fixtures/parity/qwen2 --device cuda --port 0 --tensor_parallel_size 2 2>&1 | grep -m1 'needs 2 GPUs')" | tee -a "$T"
fi
echo "== tables in $OUT/multi-gpu-*.txt"
