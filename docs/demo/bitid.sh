#!/usr/bin/env bash
# Issue #22's check: the demo recipe's first N training steps give bit-identical losses with two versions of the code
# on the same machine and the same prepared data.
#
#   docs/demo/bitid.sh OLD_COMMIT [NEW_DIR] [STEPS] [DATA]
#   e.g. docs/demo/bitid.sh 90038e8 . 100 data/demo
#   FRESH=1 docs/demo/bitid.sh ...: each run first tokenizes the corpus itself (the copy's shards are removed before
#   it), as a fresh clone's first run does; without it both runs find the shards.
#
# Both runs use experiments/demo/pretrain.yaml as it is (max_steps 2000, so the same warmup and cosine schedule as the
# real run, bf16 plugin kept) and stop after STEPS batches through limit_train_batches; they differ only in the code
# on PYTHONPATH. Validation, checkpoints and the export are off, every step is logged. The data folder is copied
# first, so neither version can rebuild or touch the original. Comparing against a run with another max_steps is not
# a check: warmup (5%) and the cosine follow max_steps, so a 100-step run logs other losses from step 1 on
# (max_steps 100: step 9 loss 6.987; max_steps 2000: 7.861, with either version of the code).
set -euo pipefail
old=${1:?old commit}; new=$(cd "${2:-.}" && pwd); steps=${3:-100}; data=$(cd "${4:-data/demo}" && pwd)
py=${PYTHON:-python}; [[ $py == */* ]] && py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")  # runs from the scratch folder
scratch=$(mktemp -d /tmp/bitid.XXXXXX)
git -C "$new" worktree add --detach "$scratch/old" "$old" >/dev/null
trap 'git -C "$new" worktree remove --force "$scratch/old"; rm -rf "$scratch/data"' EXIT  # logs stay in $scratch
cp -a "$data" "$scratch/data" && rm -f "$scratch/data/.build.lock"
"$py" - "$new/experiments/demo/pretrain.yaml" "$scratch" "$steps" <<'EOF'
import sys, yaml
src, scratch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = yaml.safe_load(open(src))
trainer = config["trainer"]
for run in ("old", "new"):
    trainer.update(limit_train_batches=steps, max_epochs=1, limit_val_batches=0, log_every_n_steps=1,
                   enable_checkpointing=False, callbacks=[], default_root_dir=f"{scratch}/{run}",
                   logger=[{"class_path": "lightning.pytorch.loggers.CSVLogger",
                            "init_args": {"save_dir": f"{scratch}/{run}", "name": "logs"}}])
    trainer.pop("val_check_interval", None)
    config["data"]["init_args"]["root"] = f"{scratch}/data"
    yaml.safe_dump(config, open(f"{scratch}/{run}.yaml", "w"), sort_keys=False)
EOF
for run in old new; do
  code=$([ $run = old ] && echo "$scratch/old" || echo "$new")
  echo "[bitid] $run: $code"
  if [ "${FRESH:-0}" = 1 ]; then rm -rf "$scratch/data/shards"; fi
  (cd "$scratch" && OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 PYTHONPATH="$code" \
     "$py" -m anygpt.cli fit --config "$scratch/$run.yaml" > "$scratch/$run.log" 2>&1)
done
"$py" - "$scratch" "$steps" <<'EOF'
import csv, sys
scratch, steps = sys.argv[1], int(sys.argv[2])
def losses(run):
    rows = csv.DictReader(open(f"{scratch}/{run}/logs/version_0/metrics.csv"))
    return {int(r["step"]): r["train/loss"] for r in rows if r.get("train/loss")}
old, new = losses("old"), losses("new")
assert len(old) == len(new) == steps, (len(old), len(new), steps)
diff = [s for s in sorted(old) if old[s] != new[s]]
for s in sorted({0, min(9, steps - 1), steps - 1}):
    print(f"step {s}: old {old[s]} new {new[s]}")
print(f"{steps} steps: " + ("bit-identical" if not diff else f"first difference at step {diff[0]}"))
sys.exit(1 if diff else 0)
EOF
