"""Plot the per-modality training/validation losses of a run's metrics.csv (CSVLogger) to a PNG.

    python docs/demo/plot_losses.py runs/demo/logs/version_0/metrics.csv docs/demo/loss.png
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(metrics: str, out: str) -> None:
    rows = list(csv.DictReader(open(metrics)))
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
    main(*sys.argv[1:3])
