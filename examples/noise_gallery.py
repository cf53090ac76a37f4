"""Render every label-noise kind on one synthetic frame: docs/noise_gallery.png.

Run: python examples/noise_gallery.py [--out docs/noise_gallery.png] [--seed 3]
Columns: image, clean mask, noisy mask, changed pixels (red).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jcas_napari.data.noise import PRESETS, corrupt  # noqa: E402
from jcas_napari.data.synthetic import make_frame  # noqa: E402
from jcas_napari.data.viz import colorize  # noqa: E402

SHOWN = [
    "symmetric50",
    "asymmetric50",
    "ellipse",
    "dilate",
    "erode",
    "affine",
    "polygon",
    "markov",
    "drop",
    "mix",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/noise_gallery.png")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    image, clean = make_frame(np.random.default_rng(args.seed), n_instruments=2)
    fig, axes = plt.subplots(len(SHOWN), 4, figsize=(4 * 2.4, len(SHOWN) * 2.0), dpi=110)
    for row, name in zip(axes, SHOWN):
        noisy, info = corrupt(clean, name, np.random.default_rng(args.seed))
        changed = np.zeros(clean.shape + (3,), np.uint8)
        changed[info.changed] = (255, 40, 40)
        panels = [image, colorize(clean), colorize(noisy), changed]
        titles = [
            "image",
            "clean mask",
            f"noisy: {name} ({PRESETS[name][0]})",
            f"changed {100 * info.disagreement:.1f}% of pixels",
        ]
        for ax, img, title in zip(row, panels, titles):
            ax.imshow(img)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle(
        "Label-noise kinds (black bg, blue shaft, orange wrist, green clasper)", fontsize=9
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
