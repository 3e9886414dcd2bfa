#!/usr/bin/env bash
# The multi-GPU checks of issue 25 (code: issue 24), run from the repository root on a machine with 2, 4 or 8 GPUs:
#   bash tools/multi_gpu_check.sh                 # every part, on 2 and (where present) 4 and 8 GPUs
#   PART=correct|resume|scale GPUS="2 4" SIZES="0.5b 7b" bash tools/multi_gpu_check.sh
# correct: float32, tiny qwen2 fixture: N ranks × batch 1 against 1 GPU × batch 1 × N accumulated micro-batches (the
#          same global batch and micro-batch shapes) for DP, ZeRO-2 and ZeRO-3. N = 2 should be bit-identical for DP
#          (NCCL sums two values once, as autograd accumulates); ZeRO-2/3 and N > 2 round differently (sharded grad
#          norm, the ring's summation order), so the largest relative loss difference is printed (expect < 1e-5).
# resume:  DP, ZeRO-2 and ZeRO-3 on N GPUs stopped at step 3 (checkpoint) and resumed must reproduce the uninterrupted losses.
# scale:   bf16 pt on 2048-token rows of random text, 0.5B- and 7B-shaped Qwen2 (tools/make_bench_model.py), LoRA and
#          full, DP / ZeRO-2 / ZeRO-3 / ZeRO-3 with optimizer offload, on 1 and N GPUs at the same per-GPU batch: tokens/s (all
#          ranks together, steps 6-25) and peak memory per GPU (nvidia-smi, the largest GPU). Target: DP ≥ 1.8× on 2
#          GPUs at 7B. Runs that do not fit print "failed" (e.g. 7B full DP: 16 bytes/parameter per GPU).
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
      for mode in dp zero2 zero3 zero3_offload; do
        flag=""; [[ $mode != dp ]] && flag="--deepspeed $mode"
        base=""
        for n in 1 $GPUS; do
          (( n > HAVE )) && continue
          [[ $n == 1 && $mode != dp ]] && { base=$base1; continue; }
          d=/tmp/mg-scale; rm -rf $d
          launch=(); (( n > 1 )) && launch=(env NPROC_PER_NODE=$n MASTER_PORT=$(nextport))
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
echo "== tables in $OUT/multi-gpu-*.txt"
