"""Gap between the pure-Python PTB-like tokenizer and the Java PTBTokenizer (the COCO protocol), one run.

    PYTHONPATH=. python benchmarks/perf/ptb_tokenizer_gap.py                       # built-in COCO-style captions
    PYTHONPATH=. python benchmarks/perf/ptb_tokenizer_gap.py --captions FILE       # your captions

FILE: a Karpathy split json ({"images": [{"sentences": [{"raw": ...}]}]}), a COCO captions json ({"annotations": [...]}
or a results list [{"image_id", "caption"}]), or a text file with one caption per line (consecutive groups of
--group-size lines form one image). Prints the fraction of captions both tokenizers turn into the same tokens, the
differing ones, both tokenizers' times, and the CIDEr difference with a leave-one-out protocol (each caption of an
image is scored against the image's other captions, as the "human" CIDEr is computed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.metrics.cider import cider_d
from benchmarks.metrics.ptb_tokenizer import JavaPTBTokenizer, python_ptb_tokenize


def _chunks(items: list[str], size: int) -> list[list[str]]:
    """Consecutive groups of ``size`` items (a short tail is dropped)."""
    return [items[i : i + size] for i in range(0, len(items) - size + 1, size)]


def load_groups(path: Path, group_size: int) -> list[list[str]]:
    if path.suffix != ".json":
        return _chunks(path.read_text(encoding="utf-8").splitlines(), group_size)
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "images" in data and data["images"] and "sentences" in data["images"][0]:
        return [[s["raw"] for s in im["sentences"]] for im in data["images"]]
    rows = data["annotations"] if isinstance(data, dict) else data
    by_image: dict[object, list[str]] = defaultdict(list)
    for row in rows:
        by_image[row["image_id"]].append(row["caption"])
    groups = list(by_image.values())
    if all(len(g) == 1 for g in groups):  # a results file: one caption per image, group neighbours
        return _chunks([g[0] for g in groups], group_size)
    return groups


def synthetic_groups(images: int = 400, per_image: int = 5, seed: int = 0) -> list[list[str]]:
    """COCO-style captions with the surface noise real annotators produce, at rough real-world rates."""
    rng = random.Random(seed)
    subjects = ["a man", "a woman", "two dogs", "a young boy", "a cat", "a group of people", "an elephant", "a girl",
                "the chef", "a skateboarder", "three zebras", "a bus", "a plate of food", "a little girl"]
    verbs = ["riding", "sitting on", "standing next to", "holding", "eating", "walking down", "looking at", "laying on",
             "parked near", "playing with", "flying over", "jumping off"]
    objects = ["a surfboard", "a wooden bench", "a red fire hydrant", "a busy street", "a kitchen counter", "the beach",
               "a snow covered slope", "a frisbee", "a large pizza", "a train station", "an umbrella", "a laptop"]
    extras = ["", "", "", " in the park", " at night", " next to a building", " on a sunny day", " in a field"]
    noise = [
        (0.10, lambda s: s.replace("a ", "a man's ", 1)),
        (0.04, lambda s: s.replace(" is ", " isn't ", 1) if " is " in s else "it's " + s),
        (0.06, lambda s: s.replace("covered", "snow-covered").replace("wooden", "old-fashioned wooden")),
        (0.05, lambda s: s + " with 2 kids"),
        (0.04, lambda s: s.replace(" and ", ", ", 1) + ", and a dog"),
        (0.03, lambda s: s.replace(" ", "  ", 1)),
        (0.01, lambda s: s + ' that says "stop"'),
        (0.01, lambda s: s + " (blurry)"),
        (0.005, lambda s: s + " w/ a hat"),
        (0.01, str.upper),
        (0.01, lambda s: s + " ."),
        (0.005, lambda s: s + " etc."),
        (0.005, lambda s: s + " in the U.S."),
    ]
    groups = []
    for _ in range(images):
        subject, verb, obj = rng.choice(subjects), rng.choice(verbs), rng.choice(objects)
        caps = []
        for _ in range(per_image):
            s = f"{rng.choice([subject, rng.choice(subjects)])} {rng.choice([verb, rng.choice(verbs)])} {obj}"
            s += rng.choice(extras)
            for p, f in noise:
                if rng.random() < p:
                    s = f(s)
            if rng.random() < 0.7:
                s = s[0].upper() + s[1:]
            if rng.random() < 0.6:
                s += "."
            if rng.random() < 0.15:
                s += " "
            caps.append(s)
        groups.append(caps)
    return groups


ADVERSARIAL_PIECES = (
    "a man dog's dogs' it's don't can't won't I'm they're 3.5 1,000 10:30 $5 50% black-and-white U.S. e.g. Mr. etc. "
    "(left) [x] \"big\" 'quoted' -- ... , . ! ? ; : w/ and/or & #1 @home 5-year-old x-ray t-shirt o'clock rock'n'roll "
    "naïve 1st 2nd 24/7 3x 4k 5'10 6\" a.m. p.m. St. vs. Dr. hot-dog. end. T.V. tv's cannot gonna wanna "
    ":) -> * + = ~ a+b"
).split()


def adversarial_groups(images: int = 600, per_image: int = 5, seed: int = 0) -> list[list[str]]:
    """Random strings of the hardest tokens (contractions, abbreviations, numbers, symbols): a worst case."""
    rng = random.Random(seed)
    caps = [" ".join(rng.choice(ADVERSARIAL_PIECES) for _ in range(rng.randint(1, 10)))
            for _ in range(images * per_image)]
    return _chunks(caps, per_image)


def leave_one_out_cider(groups: list[list[str]]) -> float:
    hyps, refs = [], []
    for g in groups:
        for i in range(len(g)):
            hyps.append(g[i])
            refs.append([r for j, r in enumerate(g) if j != i] or [g[i]])
    return cider_d(hyps, refs)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=Path, default=None)
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--adversarial", action="store_true", help="random strings of the hardest tokens instead")
    args = parser.parse_args()
    if args.captions:
        groups, name = load_groups(args.captions, args.group_size), str(args.captions)
    elif args.adversarial:
        groups, name = adversarial_groups(), "adversarial token soup"
    else:
        groups, name = synthetic_groups(), "built-in COCO-style set"
    flat = [c for g in groups for c in g]

    t0 = time.perf_counter()
    java = JavaPTBTokenizer()(flat)
    t_java = time.perf_counter() - t0
    t0 = time.perf_counter()
    python = [python_ptb_tokenize(c) for c in flat]
    t_python = time.perf_counter() - t0

    differ = [(c, j, p) for c, j, p in zip(flat, java, python, strict=True) if j != p]
    print(f"{len(flat)} captions in {len(groups)} groups ({name})")
    print(f"identical tokenization: {1 - len(differ) / len(flat):.4%} ({len(flat) - len(differ)}/{len(flat)})")
    for c, j, p in differ[:10]:
        print(f"  caption {c!r}\n    java   {j!r}\n    python {p!r}")

    def regroup(tokens: list[str]) -> list[list[str]]:
        rest = iter(tokens)
        return [list(itertools.islice(rest, len(g))) for g in groups]

    c_java, c_python = leave_one_out_cider(regroup(java)), leave_one_out_cider(regroup(python))
    print(f"leave-one-out CIDEr: java {c_java:.6f}  python {c_python:.6f}  |diff| {abs(c_java - c_python):.2e}")
    print(f"tokenizer time: java {t_java:.2f} s (one JVM start)  python {t_python:.3f} s")


if __name__ == "__main__":
    main()
