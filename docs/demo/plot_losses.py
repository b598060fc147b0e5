"""Plot the per-modality training/validation losses of a run's metrics.csv (CSVLogger) to a PNG.

    python docs/demo/plot_losses.py runs/demo/logs/version_0/metrics.csv [more.csv ...] docs/demo/loss.png

Several files are one run resumed from a checkpoint (``--ckpt_path``): for a step logged in more than one, the later
file's value is kept (the resumed run repeats the steps after its checkpoint).
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(files: list[str]) -> list[dict[str, str]]:
    """Rows of every file; a step of a later file replaces the same step (and those after it) of earlier files."""
    rows: list[dict[str, str]] = []
    for path in files:
        new = list(csv.DictReader(open(path)))
        if new:
            first = min(int(r["step"]) for r in new)
            rows = [r for r in rows if int(r["step"]) < first] + new
    return rows


def main(*args: str) -> None:
    *metrics, out = args
    rows = read_rows(metrics)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, split in zip(axes, ("train", "val"), strict=True):
        for group in ("loss", "loss_text", "loss_image", "loss_speech", "loss_music"):
            key = f"{split}/{group}"
            points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o" if split == "val" else None, label=group)
        ax.set_title(f"{split} loss (demo pretraining)")
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
