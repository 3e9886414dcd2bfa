#!/usr/bin/env python3
"""Writes the DPO benchmark's preference pairs (tools/gpu_sft.sh PART=dpo05, tools/gpu_dpo_pinned.sh): 200 pairs of a
40-word prompt and two 900-word responses drawn from a small word list, seeded, to the path given (default
/tmp/pref.jsonl)."""
import json
import random
import sys

random.seed(1)
words = "the of and to in is was for on that with as by at from it an be this which or are have not had but were one their all".split()


def say(n):
    return " ".join(random.choice(words) for _ in range(n))


with open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pref.jsonl", "w") as f:
    for _ in range(200):
        f.write(json.dumps({"prompt": say(40), "chosen": say(900), "rejected": say(900)}) + "\n")
