#!/usr/bin/env bash
# One device call for issue 5 (fine-tuning), run from the repository root on the GPU machine:
#   PART=interop: train LoRA (and DoRA on phi3) and full on tiny fixtures with osprey on CUDA float32, then check with
#                 transformers+PEFT (tools/peft_interop_check.py) that PEFT loads the adapters, transformers loads the
#                 merged and fully trained folders, and all give Osprey's logits.
#   PART=bench05: 0.5B-shaped Qwen2 (tools/make_bench_model.py): LoRA r8 all-linear batch 4x2048 without gradient
#                 checkpointing, and full fine-tuning batch 4x2048; osprey and tools/bench_sft_reference.py side by side.
#   PART=bench7b: 7B-shaped Qwen2, LoRA batch 1x2048 with gradient checkpointing, both stacks.
# Needs .dist/osprey-gpu.tar.xz (tools/pack_gpu.sh) and .dist/tokenizers.tar.xz (the npm tokenizers, for a real
# 151k vocabulary). Peak memory of every run is polled with nvidia-smi (the same meter for both stacks).
set -uo pipefail
OUT=${OUT:-/tmp/osprey-out}; mkdir -p "$OUT" /tmp/osp /tmp/t
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
[[ -x /tmp/osp/osprey-gpu/osprey ]] || tar -xJf .dist/osprey-gpu.tar.xz -C /tmp/osp
[[ -d /tmp/t/tokenizers ]] || tar -xJf .dist/tokenizers.tar.xz -C /tmp/t
OSP=/tmp/osp/osprey-gpu/osprey
PART=${PART:-interop}

peak() { # peak GPU memory (MiB) while running "$@"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem.log & local pid=$!
  "$@"; local rc=$?
  kill $pid; sleep 0.2
  echo "peak_mib $(sort -n /tmp/mem.log | tail -1) base_mib $(sort -n /tmp/mem.log | head -1)" | tee -a "$OUT/peaks.txt"
  return $rc
}

if [[ $PART == interop ]]; then
  IDS="5 17 42 99 100 3 8 200 31 64 77 12;9 8 7 6 5 4 3 120 121 122 123 124"
  COMMON="--dataset examples/datasets/messages.jsonl --max_steps 20 --per_device_train_batch_size 2 --gradient_accumulation_steps 2 --logging_steps 5 --save_steps 20 --device cuda --torch_dtype float32 --add_version false"
  for fam in qwen2 phi3 gemma2; do
    extra=""; [[ $fam == phi3 ]] && extra="--use_dora true"
    $OSP sft --model tests/fixtures/parity/$fam $COMMON --learning_rate 1e-2 --output_dir /tmp/lora-$fam $extra 2>&1 | tail -3
    CK=/tmp/lora-$fam/checkpoint-20
    $OSP infer --adapters $CK --input_ids "$IDS" --save_logits /tmp/lora-$fam.st --device cuda --torch_dtype float32 2>&1 | tail -1
    $OSP export --adapters $CK --merge_lora true --torch_dtype float32 2>&1 | tail -1
    $OSP infer --model $CK-merged --input_ids "$IDS" --save_logits /tmp/merged-$fam.st --device cuda --torch_dtype float32 2>&1 | tail -1
    $OSP sft --model tests/fixtures/parity/$fam $COMMON --train_type full --learning_rate 1e-3 --output_dir /tmp/full-$fam 2>&1 | tail -2
    $OSP infer --model /tmp/full-$fam/checkpoint-20 --input_ids "$IDS" --save_logits /tmp/full-$fam.st --device cuda --torch_dtype float32 2>&1 | tail -1
    python3 tools/peft_interop_check.py --base tests/fixtures/parity/$fam --adapter $CK --merged $CK-merged --full /tmp/full-$fam/checkpoint-20 \
      --logits adapter=/tmp/lora-$fam.st --logits merged=/tmp/merged-$fam.st --logits full=/tmp/full-$fam.st --device cuda --out "$OUT/interop-$fam.json" 2>&1 | tail -12
  done
  cp /tmp/lora-qwen2/logging.jsonl "$OUT/lora-qwen2-logging.jsonl"
fi

bench_data() { # $1 rows -> /tmp/rand.jsonl: texts of ~3000 words (> 2048 tokens), seeded
  python3 - "$1" <<'PY'
import json, random, sys
random.seed(0)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()
words += ["alpha", "river", "matrix", "garden", "silver", "orbit", "quantum", "harbor", "lantern", "meadow", "crystal", "thunder", "violet", "summit", "canyon", "ember"]
with open("/tmp/rand.jsonl", "w") as f:
    for _ in range(int(sys.argv[1])):
        f.write(json.dumps({"text": " ".join(random.choice(words) + random.choice(["", "", ",", "."]) for _ in range(3000))}) + "\n")
PY
}

osprey_bench() { # $1 model dir, $2 name, rest: flags
  local m=$1 name=$2; shift 2
  rm -rf /tmp/bench-$name
  peak $OSP pt --model $m --dataset /tmp/rand.jsonl --max_length 2048 --truncation_strategy right --max_steps 25 --logging_steps 5 \
    --save_strategy no --device cuda --torch_dtype bfloat16 --output_dir /tmp/bench-$name --add_version false --gradient_accumulation_steps 1 \
    --lr_scheduler_type constant "$@" 2>&1 | grep -v "^Train" | grep -v "^frame #" | tail -8
  cp /tmp/bench-$name/logging.jsonl "$OUT/osprey-$name.jsonl"
  python3 - /tmp/bench-$name/logging.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_second"' in l]
steady = [r["tokens_per_second"] for r in rows[1:]]  # the first window holds warm-up
print(f"osprey tokens/s (steps 6-25): {sum(steady)/len(steady):.0f}  loss first/last {rows[0]['loss']:.3f}/{rows[-1]['loss']:.3f}")
PY
  if [[ ${PROFILE:-1} == 1 ]]; then # a second, short run with per-phase synchronised timing (slower; not the speed above)
    OSPREY_PROFILE=1 $OSP pt --model $m --dataset /tmp/rand.jsonl --max_length 2048 --truncation_strategy right --max_steps 10 --logging_steps 5 \
      --save_strategy no --device cuda --torch_dtype bfloat16 --output_dir /tmp/prof-$name --add_version false --gradient_accumulation_steps 1 \
      --lr_scheduler_type constant "$@" 2>&1 | grep "profile: steps 6-10" | tee "$OUT/profile-$name.txt"
  fi
}

if [[ $PART == bench05 ]]; then
  python3 tools/make_bench_model.py --out /tmp/q05 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json /tmp/q05/
  bench_data 120
  echo "== HF+PEFT LoRA 0.5B 4x2048"; peak python3 tools/bench_sft_reference.py --model /tmp/q05 --train_type lora --batch 4 --seq 2048 --steps 20 --warmup 5 --out "$OUT/hf-lora05.json" 2>&1 | grep -v -i warn | tail -2
  echo "== osprey LoRA 0.5B 4x2048"; osprey_bench /tmp/q05 lora05 --per_device_train_batch_size 4 --gradient_checkpointing false
  [[ ${SKIP_FULL:-0} == 1 ]] && exit 0
  echo "== HF full 0.5B 4x2048"; peak python3 tools/bench_sft_reference.py --model /tmp/q05 --train_type full --batch 4 --seq 2048 --steps 20 --warmup 5 --out "$OUT/hf-full05.json" 2>&1 | grep -v -i warn | tail -2
  echo "== osprey full 0.5B 4x2048"; osprey_bench /tmp/q05 full05 --per_device_train_batch_size 4 --gradient_checkpointing false --train_type full
fi

if [[ $PART == bench7b ]]; then
  python3 tools/make_bench_model.py --out /tmp/q7 --size 7b 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json /tmp/q7/
  bench_data 30
  echo "== HF+PEFT LoRA 7B 1x2048 gc"; peak python3 tools/bench_sft_reference.py --model /tmp/q7 --train_type lora --batch 1 --seq 2048 --gradient_checkpointing --steps 20 --warmup 5 --out "$OUT/hf-lora7b.json" 2>&1 | grep -v -i warn | tail -2
  echo "== osprey LoRA 7B 1x2048 gc"; osprey_bench /tmp/q7 lora7b --per_device_train_batch_size 1 --gradient_checkpointing true
fi
if [[ $PART == dpo05 ]]; then # DPO LoRA on the 0.5B shape: 4 pairs of ~1000-token responses per step; the HF side is tools/bench_dpo_reference.py (TRL's computation on transformers+PEFT: TRL is not installed there)
  [[ -d /tmp/q05 ]] || python3 tools/make_bench_model.py --out /tmp/q05 2>&1 | grep wrote
  cp /tmp/t/tokenizers/qwen3/tokenizer.json /tmp/t/tokenizers/qwen3/tokenizer_config.json /tmp/q05/
  python3 tools/make_bench_pref_data.py /tmp/pref.jsonl
  rm -rf /tmp/bench-dpo05
  peak $OSP rlhf --rlhf_type dpo --model /tmp/q05 --dataset /tmp/pref.jsonl --max_length 2048 --max_steps 25 --logging_steps 5 --save_strategy no \
    --device cuda --torch_dtype bfloat16 --output_dir /tmp/bench-dpo05 --add_version false --per_device_train_batch_size 4 \
    --gradient_accumulation_steps 1 --gradient_checkpointing false --lr_scheduler_type constant 2>&1 | grep -v "^Train" | tail -3
  cp /tmp/bench-dpo05/logging.jsonl "$OUT/osprey-dpo05.jsonl"
  peak python3 tools/bench_dpo_reference.py --model /tmp/q05 --data /tmp/pref.jsonl --batch 4 --max_length 2048 --steps 20 --warmup 5 \
    --out "$OUT/hf-dpo05.json" > "$OUT/hf-dpo05.txt" 2>&1 || tail -5 "$OUT/hf-dpo05.txt"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"transformers+PEFT DPO tokens/s {r['tokens_per_s']:.0f}, {r['ms_per_step']} ms/step, loss {r['loss_first']:.4f}/{r['loss_last']:.4f}\")" "$OUT/hf-dpo05.json" 2>/dev/null
  python3 - /tmp/bench-dpo05/logging.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_second"' in l]
steady = [r["tokens_per_second"] for r in rows[1:]]
print(f"osprey DPO tokens/s (steps 6-25): {sum(steady)/len(steady):.0f}  loss first/last {rows[0]['loss']:.4f}/{rows[-1]['loss']:.4f}  rewards/accuracies last {rows[-1].get('rewards/accuracies')}")
PY
fi
echo "== peaks"; cat "$OUT/peaks.txt"
