#!/usr/bin/env bash
# Create or update ./.venv with anygpt and its test dependencies (torch 2.11 stack, Lightning, ...).
# Rerunning is cheap: dependencies are reinstalled only when pyproject.toml or constraints.txt changes. The torch trio
# (torch, torchvision, torchaudio) is pinned together by constraints.txt; pyproject.toml gives compatible ranges.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.deps-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -U pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  # laion-clap (CLAP score judge adapter) pins an old numpy; its real imports come with the dev extra above.
  .venv/bin/python -m pip install -q --no-deps laion-clap==1.1.7
  touch "$stamp"
else
  # Point the editable install at this checkout (the venv may be shared between clones).
  .venv/bin/python -m pip install -q --no-deps -e .
fi
