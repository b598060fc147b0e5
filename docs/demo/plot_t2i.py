"""A picture of coco-t2i's generated images next to their prompts (and the real image each caption describes).

Reads the output folder of ``anygpt benchmark coco-t2i`` (its ``predictions/rank*.jsonl`` name each generated image)
and the demo corpus the captions come from; the first ``rows`` captions in the benchmark's own order are shown.

    python docs/demo/plot_t2i.py runs/benchmarks/coco-t2i docs/demo/t2i.png [--data data/demo] [--rows 8]
"""

import argparse
import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.tasks.coco_t2i import CocoT2i  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the coco-t2i output folder (runs/benchmarks/coco-t2i)")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--data", type=Path, default=Path("data/demo"), help="the corpus the benchmark read")
    parser.add_argument("--rows", type=int, default=8)
    args = parser.parse_args()

    generated = {}
    for log in sorted((args.run / "predictions").glob("rank*.jsonl")):
        for line in log.read_text().splitlines():
            record = json.loads(line)
            generated[record["key"]] = record.get("path")
    items = [it for it in CocoT2i(limit=None).read_items(args.data) if it.key in generated][: args.rows]
    if not items:
        raise SystemExit(f"no predictions of the demo captions in {args.run / 'predictions'}: run "
                         "anygpt benchmark coco-t2i --ckpt CKPT first")
    fig, axes = plt.subplots(len(items), 3, figsize=(6.2, 1.5 * len(items)),
                             gridspec_kw={"width_ratios": [2.2, 1, 1]})
    axes[0, 1].set_title("generated", fontsize=9)
    axes[0, 2].set_title("real image", fontsize=9)
    for row, item in zip(axes, items, strict=True):
        row[0].text(0, 0.5, "\n".join(textwrap.wrap(item.caption, 38)), va="center", fontsize=8.5)
        path = generated[item.key]
        if path:
            row[1].imshow(Image.open(path).convert("RGB"))
        else:
            row[1].text(0.5, 0.5, "no image", ha="center", va="center", fontsize=8)
        row[2].imshow(Image.open(item.path).convert("RGB").resize((64, 64)))
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(items)} captions)")


if __name__ == "__main__":
    main()
