"""A third scene generator, written only to check the cleaning on data that no decision
saw ("family c"; RESULTS.md, "A third generator"). Do not tune anything on it: its value
is that nothing was chosen with it.

Blue-grey tissue with dark vessels, pale rod instruments (shaft 1, a box wrist 2, two jaws
3) that move over a sequence, and its own noise: boundary grow/shrink, part shift, a part
swap, an instrument drop, or a per-frame mix of those.

    python benchmarks/unseen_family_c.py OUT --seed S --noise {clean,boundary,shift,swap,drop,mixed}

writes OUT/images/seq_k/fNN.png, OUT/masks/... (noisy) and OUT/masks_clean/... at 256x320.
"""

import argparse
import sys

import numpy as np
from requires import add_flag, require
from scipy import ndimage as ndi

H, W = 256, 320
NOISES = ("clean", "boundary", "shift", "swap", "drop", "mixed")


def background(rng):
    """Smooth bluish-grey tissue with dark vessels (not the red of families a and b)."""
    base = ndi.gaussian_filter(rng.normal(0, 1, (H, W)), 12)
    base = (base - base.min()) / (np.ptp(base) + 1e-9)
    img = np.stack([90 + 60 * base, 110 + 70 * base, 140 + 80 * base], -1)
    for _ in range(rng.integers(3, 7)):
        y0, x0 = rng.uniform(0, H), rng.uniform(0, W)
        ang = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[:H, :W]
        d = np.abs((yy - y0) * np.cos(ang) - (xx - x0) * np.sin(ang))
        img[d < rng.uniform(1, 3)] *= 0.6
    return img


def instrument(mask, img, rng, y0, x0, ang, length, width, color):
    """A rod (shaft, 1) entering from outside, a wrist box (2) and two clasper jaws (3)."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    c, s = np.cos(ang), np.sin(ang)
    u = (xx - x0) * c + (yy - y0) * s  # along the rod, 0 at the tip
    v = -(xx - x0) * s + (yy - y0) * c
    shaft = (u > 40) & (u < length) & (np.abs(v) < width / 2)
    wrist = (u > 18) & (u <= 40) & (np.abs(v) < width * 0.6)
    jaw = (u > 0) & (u <= 18)
    open_ = 0.35
    clasp = jaw & ((np.abs(v - u * open_) < width * 0.25) | (np.abs(v + u * open_) < width * 0.25))
    for cls, m, shade in ((1, shaft, 1.0), (2, wrist, 0.8), (3, clasp, 1.15)):
        mask[m] = cls
        img[m] = np.clip(np.array(color) * shade + rng.normal(0, 6, (m.sum(), 3)), 0, 255)


def scene_sequence(rng, frames):
    bg = background(rng)
    tools = []
    for _ in range(rng.integers(1, 3)):
        tools.append(
            dict(
                y0=rng.uniform(70, 190),
                x0=rng.uniform(80, 240),
                ang=rng.uniform(0, 2 * np.pi),
                length=rng.uniform(200, 320),
                width=rng.uniform(14, 24),
                color=rng.uniform(150, 230, 3),
                dy=rng.uniform(-2, 2),
                dx=rng.uniform(-2, 2),
                dang=rng.uniform(-0.03, 0.03),
            )
        )
    for t in range(frames):
        img, mask = bg.copy(), np.zeros((H, W), np.uint8)
        for tool in tools:
            instrument(
                mask,
                img,
                rng,
                tool["y0"] + t * tool["dy"],
                tool["x0"] + t * tool["dx"],
                tool["ang"] + t * tool["dang"],
                tool["length"],
                tool["width"],
                tool["color"],
            )
        img = ndi.gaussian_filter(img, (0.8, 0.8, 0)) + rng.normal(0, 4, img.shape)
        yield np.clip(img, 0, 255).astype(np.uint8), mask


def noisy(mask, kind, rng):
    out = mask.copy()
    if kind == "clean":
        return out
    if kind == "mixed":
        kind = rng.choice(["boundary", "shift", "swap", "drop"])
    if kind == "boundary":
        out = np.zeros_like(mask)
        for cls in rng.permutation([1, 2, 3]):
            r = int(rng.integers(2, 7))
            m = mask == cls
            m = (
                ndi.binary_dilation(m, iterations=r)
                if rng.random() < 0.5
                else ndi.binary_erosion(m, iterations=r)
            )
            out[m] = cls
    elif kind == "shift":
        out = np.zeros_like(mask)
        for cls in (1, 2, 3):
            dy, dx = rng.integers(-6, 7, 2)
            out[np.roll(mask == cls, (dy, dx), (0, 1))] = cls
    elif kind in ("swap", "drop"):
        comp, n = ndi.label(mask > 0)
        if n:
            sel = comp == rng.integers(1, n + 1)
            if kind == "drop":
                out[sel] = 0
            else:
                part = sel & (mask == rng.choice([1, 2, 3]))
                cls = mask[part][0] if part.any() else 1
                out[part] = rng.choice([c for c in (1, 2, 3) if c != cls])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="dataset folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", default="mixed", choices=NOISES)
    ap.add_argument("--sequences", type=int, default=6)
    ap.add_argument("--frames", type=int, default=20)
    add_flag(ap)
    a = ap.parse_args()
    require("unseen_family_c.py", ("numpy", "scipy", "PIL", "jcas_napari"), a.check_imports)
    if a.out is None:
        ap.error("the dataset folder OUT is required")
    from jcas_napari.data.writers import frame_path, write_image, write_mask

    rng = np.random.default_rng(a.seed)
    for k in range(a.sequences):
        for t, (img, mask) in enumerate(scene_sequence(rng, a.frames)):
            fid = f"seq_{k}/f{t:02d}"
            write_image(frame_path(a.out, "images", fid), img)
            write_mask(frame_path(a.out, "masks_clean", fid), mask)
            write_mask(frame_path(a.out, "masks", fid), noisy(mask, a.noise, rng))


if __name__ == "__main__":
    sys.exit(main())
