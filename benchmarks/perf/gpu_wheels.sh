#!/usr/bin/env bash
# Wheels for a GPU machine without a package index, downloaded here (where there is one) into a folder that travels
# with the working tree. The GPU image holds Python 3.12, torch 2.11.0+cu130, torchvision 0.26, torchaudio 2.11,
# lightning 2.6, torchmetrics 1.9 and transformers 5 (with their own dependencies); this adds what anygpt needs on top:
#   - for benchmarks/perf/gpu_suite.py: encodec (our speech and music tokenizers build on its modules) and einops;
#   - for `anygpt fit` there (e.g. experiments/tiny/pretrain.yaml on the GPU): jsonargparse[signatures], webdataset,
#     torchdata and their small dependencies;
#   - for the suite's fine-tune step (LoRA): peft (its own dependencies, accelerate aside, are in the image);
#   - setuptools and wheel, so `pip install --no-build-isolation -e .` works offline.
# The speechtokenizer package (the suite's optional speed reference) is left out: importing it pulls in its trainer's
# stack (accelerate, tensorboard, matplotlib, scipy, ...), over 60 MB of wheels; without it the suite says so.
#
#   bash benchmarks/perf/gpu_wheels.sh [DIR]        # DIR defaults to wheels/gpu (git-ignored)
#
# Then on the GPU machine, from the repository root: the command in benchmarks/perf/gpu_suite.py's docstring.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-wheels/gpu}
python=${PYTHON:-python3}
mkdir -p "$dir"
target=(--python-version 3.12 --implementation cp --abi cp312 --platform manylinux2014_x86_64)
"$python" -m pip download -q --no-deps --only-binary=:all: "${target[@]}" -d "$dir" \
  einops==0.8.2 \
  jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 \
  webdataset==1.0.2 braceexpand==0.1.7 torchdata==0.11.0 \
  peft==0.21.2 accelerate==1.16.0 \
  "setuptools>=68,<81" wheel
# encodec 0.1.1 is published as a source archive only; its wheel is pure Python, so build it here.
"$python" -m pip wheel -q --no-deps -w "$dir" encodec==0.1.1
ls -l "$dir"
du -sh "$dir"
