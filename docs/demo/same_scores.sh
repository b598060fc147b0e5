#!/usr/bin/env bash
# Issue #22's other check: a fixed export's benchmark scores are unchanged by a change of the code.
#
#   docs/demo/same_scores.sh [RESULTS_DIR] [CKPT] [OUT]
#   e.g. docs/demo/same_scores.sh docs/demo/long/step8000 anygpt-assets:models/demo
#
# Runs the six benchmarks of CKPT (default: the demo model shipped with anygpt) with this checkout's code and no
# prediction cache, then compares each results.json with the committed one in RESULTS_DIR (the shipped model's are in
# docs/demo/long/step8000): value, interval, every metric and baseline, n, n_failed, the model and data hashes and the
# set distances must be equal to the last digit. ~7 min on 2 CPU cores (one thread).
set -euo pipefail
ref=$(cd "${1:-docs/demo/long/step8000}" && pwd); ckpt=${2:-anygpt-assets:models/demo}
out=${3:-$(mktemp -d /tmp/same_scores.XXXXXX)}
py=${PYTHON:-python}
for task in coco-caption coco-t2i librispeech-asr vctk-tts musiccaps-caption musiccaps-gen; do
  echo "[same_scores] $task -> $out/$task"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 PYTHONPATH=$PWD "$py" -m anygpt.cli benchmark "$task" \
    --ckpt "$ckpt" --cache false --out "$out/$task" > "$out/$task.log" 2>&1
done
"$py" - "$ref" "$out" <<'PY'
import json, sys
from pathlib import Path
ref, out = Path(sys.argv[1]), Path(sys.argv[2])
fields = ["value", "interval", "metrics", "baselines", "n", "n_failed", "model_hash", "data_hash", "set_distances"]
changed = 0
for committed in sorted(ref.glob("*.json")):
    new = out / committed.stem / "results.json"
    if not new.exists():
        print(f"{committed.stem}: no results (see {out / committed.stem}.log)")
        changed += 1
        continue
    a, b = json.loads(committed.read_text()), json.loads(new.read_text())
    differ = [f for f in fields if a.get(f) != b.get(f)]
    print(f"{committed.stem}: {a['value']} -> {b['value']}: " + ("identical" if not differ else f"differ in {differ}"))
    changed += bool(differ)
sys.exit(1 if changed else 0)
PY
