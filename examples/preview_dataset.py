"""Write a preview picture of a dataset: frames, given masks and (if present) clean masks.

Run: python examples/preview_dataset.py DATASET --out preview.png [--frames 4]
"""

from __future__ import annotations

import argparse

import numpy as np

from jcas_napari.data.io import open_dataset, write_image
from jcas_napari.data.viz import colorize, overlay


def preview(dataset: str, n: int = 4) -> np.ndarray:
    """(rows*H, cols*W, 3) uint8 grid: one row per frame, evenly spaced over the dataset."""
    ds = open_dataset(dataset)
    k = ds.classes.num_classes
    rows = []
    for i in np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int):
        s = ds[int(i)]
        cols = [s.image, overlay(s.image, s.mask, 0.55, k), colorize(s.mask, k)]
        if s.clean is not None:
            changed = np.zeros_like(s.image)
            changed[(s.mask != s.clean) & (s.clean != ds.classes.ignore_index)] = (255, 40, 40)
            cols += [colorize(s.clean, k), changed]
        rows.append(np.concatenate(cols, axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset")
    ap.add_argument("--out", default="preview.png")
    ap.add_argument("--frames", type=int, default=4)
    args = ap.parse_args()
    write_image(args.out, preview(args.dataset, args.frames))
    print(f"wrote {args.out}: image | overlay | given mask | clean mask | wrong pixels (red)")


if __name__ == "__main__":
    main()
