"""A fourth scene generator ("family d"), only to check the cleaning on data no decision saw.

It was written by a helper that was given a prose description and read none of the
project's generators or noise models (only ``data/writers.py``). Do not tune anything on
it; RESULTS.md ("A fourth generator") has what it showed. Endoscopic instrument-part
segmentation (shaft / wrist / clasper) with exact truth:

    python benchmarks/unseen_family_d.py OUT --seed S --noise {clean,boundary,shift,swap,drop,mixed}
                    [--sequences 6] [--frames 20]

Writes OUT/images, OUT/masks_clean (truth) and OUT/masks (noisy) as seq_k/fTT.png.
Classes: 0 background, 1 shaft, 2 wrist, 3 clasper. Scene and truth depend only on --seed;
the label noise draws from a second generator seeded with (seed, noise kind).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from requires import add_flag, require
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon
from skimage.measure import find_contours

H, W, M = 256, 320, 40  # frame size; margin of the tissue canvas the camera drifts over
NOISES = ("clean", "boundary", "shift", "swap", "drop", "mixed")
FRAME_P = {"boundary": 0.7, "shift": 0.22, "swap": 0.5, "drop": 0.15}  # share of frames hit
MIXED_P = {"boundary": 0.5, "shift": 0.1, "swap": 0.3, "drop": 0.1}  # kinds in mixed
YY, XX = np.mgrid[0:H, 0:W].astype(np.float32)


def field(rng, shape, sigma):
    """Smooth random field with unit standard deviation."""
    f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return f / (f.std() + 1e-8)


def make_tissue(rng):
    """Wet, folded, partly fatty tissue on an (H+2M, W+2M) canvas: colour (.., 3) and gloss."""
    sh = (H + 2 * M, W + 2 * M)
    folds = np.exp(-((field(rng, sh, 30) / 0.22) ** 2))
    folds += 0.6 * np.exp(-((field(rng, sh, 12) / 0.12) ** 2)) * np.clip(field(rng, sh, 30), 0, 1)
    fat = np.clip(field(rng, sh, 10) + 0.5 * field(rng, sh, 3) - rng.uniform(0.6, 1.6), 0, 1)
    fat = ndi.gaussian_filter(fat, 1.5)
    h = (
        field(rng, sh, 20)
        + 0.5 * field(rng, sh, 8)
        + 0.15 * field(rng, sh, 2.5)
        - 0.9 * folds
        + 1.5 * fat
    )
    gy, gx = np.gradient(ndi.gaussian_filter(h, 1.2))
    k, lx, ly = rng.uniform(2.0, 4.0), *rng.normal(0, 0.7, 2)
    shade = 1 / np.sqrt(1 + k * k * (gx * gx + gy * gy)) + 0.5 * k * (lx * gx + ly * gy)
    pink = np.array([0.92, 0.52, 0.48]) * rng.uniform(0.9, 1.08, 3)
    mix = 1 / (1 + np.exp(-1.5 * field(rng, sh, 16)))
    col = pink * (1 - mix)[..., None] + np.array([0.58, 0.16, 0.15]) * mix[..., None]
    fa = np.clip(2 * fat, 0, 1)[..., None]
    col = col * (1 - fa) + np.array([1.0, 0.9, 0.64]) * fa
    ves = np.exp(-((field(rng, sh, 7) / 0.07) ** 2)) * np.clip(field(rng, sh, 18) - 0.3, 0, 1)
    col = col * (1 - 0.45 * ves[..., None]) + 0.45 * ves[..., None] * np.array([0.45, 0.08, 0.16])
    col *= ((1 - 0.35 * folds) * np.clip(shade, 0.2, 1.6) * (1 + 0.05 * field(rng, sh, 1)))[
        ..., None
    ]
    gloss = np.clip((shade - np.quantile(shade, 0.985)) / (0.25 * shade.std()), 0, 1)
    gloss *= field(rng, sh, 4) > 0
    return col.astype(np.float32), ndi.gaussian_filter(gloss, 0.8)


def make_tools(rng, n, scale):
    """1-3 instruments entering from distinct borders, with smooth motion parameters."""
    tools = []
    for side in rng.permutation(4)[:n]:
        p = rng.uniform(0.15, 0.85)
        B = np.array([(-4, p * H), (W + 4, p * H), (p * W, -4), (p * W, H + 4)][side], float)
        to_c = np.array([W / 2, H / 2]) + rng.normal(0, 30, 2) - B
        D = np.linalg.norm(to_c)
        dark = rng.random() < 0.6
        tools.append(
            dict(
                B=B,
                edge=np.array([[0, 1], [0, 1], [1, 0], [1, 0]][side], float),
                D=D,
                th0=np.arctan2(to_c[1], to_c[0]) + rng.uniform(-0.45, 0.45),
                w=22 * scale * rng.uniform(0.85, 1.15),
                L0=rng.uniform(0.45, 0.8) * D,
                f=rng.uniform(0.3, 1.2, 5),
                ph=rng.uniform(0, 2 * np.pi, 5),
                jf=rng.uniform(0.8, 2.5),
                amax=rng.uniform(0.35, 1.0),
                wamp=rng.uniform(0.1, 0.6),
                mode=rng.choice(["stay", "stay", "stay", "leave", "enter"]),
                tm=rng.uniform(0.3, 0.7),
                shaft=(np.array([0.10, 0.10, 0.12]) if dark else np.array([0.50, 0.52, 0.55]))
                * rng.uniform(0.8, 1.2),
                spec=rng.uniform(0.25, 0.45) if dark else rng.uniform(0.5, 0.9),
                u0=rng.uniform(-0.5, 0.3),
            )
        )
    return tools


def pose(T, tt):
    """Entry point, shaft angle, insertion depth, wrist bend and jaw opening at time tt in [0,1]."""
    s = np.sin(2 * np.pi * T["f"] * tt + T["ph"])
    L = T["L0"] + 0.2 * T["D"] * s[2]
    if T["mode"] == "leave":
        L -= 1.3 * T["D"] * np.clip((tt - T["tm"]) / 0.3, 0, 1)
    elif T["mode"] == "enter":
        L -= 1.3 * T["D"] * np.clip((T["tm"] - tt) / 0.3, 0, 1)
    jaw = T["amax"] * (0.5 + 0.5 * np.sin(2 * np.pi * T["jf"] * tt + T["ph"][4]))
    return T["B"] + 25 * s[0] * T["edge"], T["th0"] + 0.3 * s[1], L, T["wamp"] * s[3], jaw


def metal(q, base, spec, u0, tint):
    """Cylinder-shaded metal: q is the across-width coordinate in [-1, 1]."""
    cyl = np.sqrt(np.clip(1 - q * q, 0, 1))
    hl = spec * np.exp(-(((q - u0) / 0.14) ** 2)) + 0.3 * spec * np.exp(-(((q + 0.75) / 0.08) ** 2))
    return base * (0.22 + 0.78 * cyl)[..., None] + hl[..., None] + 0.1 * cyl[..., None] * tint


def render_tool(T, ps, tint):
    """Premultiplied colour, alpha and label map of one instrument (parts painted in order)."""
    B, th, L, bend, jaw = ps
    w = T["w"]
    ww, lw, lj = 0.82 * w, 1.1 * w, 1.7 * w
    P, A, lab = (
        np.zeros((H, W, 3), np.float32),
        np.zeros((H, W), np.float32),
        np.zeros((H, W), np.uint8),
    )

    def frame(o, ang):  # along / across coordinates in a frame at o rotated by ang
        c, s = np.cos(ang), np.sin(ang)
        return (XX - o[0]) * c + (YY - o[1]) * s, -(XX - o[0]) * s + (YY - o[1]) * c

    def paint(cls, a, col):
        nonlocal P, A
        P = col * a[..., None] + P * (1 - a[..., None])
        A = a + A * (1 - a)
        lab[a >= 0.5] = cls

    def cl(v):
        return np.clip(v + 0.5, 0, 1)  # antialiased half-plane

    s, d = frame(B, th)
    paint(
        1,
        cl(w / 2 - np.abs(d)) * cl(L - s),
        metal(d / (w / 2), T["shaft"], T["spec"], T["u0"], tint),
    )
    S = B + L * np.array([np.cos(th), np.sin(th)])
    s, d = frame(S, th + bend)
    col = metal(d / (ww / 2), np.array([0.62, 0.60, 0.56]), 0.7, T["u0"], tint)
    col *= (1 - 0.45 * (np.cos(2 * np.pi * s / (0.33 * w)) > 0.75))[..., None]  # joint grooves
    col *= (1 - 0.6 * (np.hypot(s - 0.55 * lw, d) < 0.17 * w))[..., None]  # pivot pin
    paint(2, cl(ww / 2 - np.abs(d)) * cl(s + 0.1 * w) * cl(lw - s), col)
    Wp = S + lw * np.array([np.cos(th + bend), np.sin(th + bend)])
    for sg in (1, -1):
        s, d = frame(Wp, th + bend + sg * jaw / 2)
        d = sg * d
        hgt = ww / 2 * (1 - 0.72 * np.clip(s / lj, 0, 1))
        col = metal(2 * d / hgt - 1, np.array([0.55, 0.56, 0.58]), 0.8, T["u0"], tint)
        col *= (1 - 0.4 * ((d < 0.3 * hgt) & (np.sin(2 * np.pi * s / 3.0) > 0)))[..., None]  # teeth
        paint(3, cl(d) * cl(hgt - d) * cl(s) * cl(lj - s), col)
    return P, A, lab


def blur_kernel(rng):
    """Linear motion-blur kernel, 3-7 px long, random direction."""
    n = int(rng.integers(3, 8)) | 1
    k = np.zeros((n, n), np.float32)
    a, r = rng.uniform(0, np.pi), np.linspace(-(n // 2), n // 2, 4 * n)
    k[
        np.round(n // 2 + r * np.sin(a)).astype(int), np.round(n // 2 + r * np.cos(a)).astype(int)
    ] = 1
    return k / k.sum()


def make_sequence(rng, nframes):
    scale = rng.uniform(0.6, 1.7)
    seq = dict(
        tissue=make_tissue(rng),
        tools=make_tools(rng, int(rng.choice([1, 2, 2, 3])), scale),
        cam=rng.uniform(0, 2 * np.pi, 2),
        vig=rng.uniform(0.3, 0.65),
        noise=rng.uniform(0.008, 0.025),
        shadow=rng.normal(0, 6, 2),
        gain=rng.uniform(0.85, 1.15),
        blur=rng.random() < 0.35,
        haze=rng.uniform(0.2, 0.5) if rng.random() < 0.35 else 0.0,
        hazef=field(rng, (H + 2 * M, W + 2 * M), 25),
        nframes=nframes,
    )
    r = np.hypot(XX - W / 2 - rng.normal(0, 6), YY - H / 2 - rng.normal(0, 6))
    R = rng.uniform(0.52, 0.62) * W if rng.random() < 0.5 else 1e9  # circular scope field of view
    seq["fov"] = np.clip((R - r) / 2.5 + 0.5, 0, 1)
    seq["vigmap"] = np.clip(1 - seq["vig"] * (r / min(R, np.hypot(H, W) / 2)) ** 2, 0.05, 1)
    return seq


def render_frame(seq, t, rng):
    tt = t / max(seq["nframes"] - 1, 1)
    oy, ox = (M + (M - 2) * np.sin(2 * np.pi * 0.35 * tt + seq["cam"])).astype(int)
    col, gloss = (
        seq["tissue"][0][oy : oy + H, ox : ox + W],
        seq["tissue"][1][oy : oy + H, ox : ox + W],
    )
    tint = col.mean((0, 1))
    tools = [render_tool(T, pose(T, tt), tint) for T in seq["tools"]]  # listed far to near
    Aall = 1 - np.prod([1 - A for _, A, _ in tools], axis=0)
    dy, dx = np.round(seq["shadow"]).astype(int)
    shadow = ndi.gaussian_filter(np.roll(Aall, (dy, dx), (0, 1)), 5)
    img = col * (1 - 0.55 * shadow)[..., None] + gloss[..., None]
    clean, owner = np.zeros((H, W), np.uint8), np.full((H, W), -1, np.int8)
    for i, (P, A, lab) in enumerate(tools):
        img = img * (1 - A[..., None]) + P
        clean[lab > 0], owner[lab > 0] = lab[lab > 0], i
    if seq["haze"]:
        hz = seq["haze"] * np.clip(
            0.6 + 0.4 * seq["hazef"][oy : oy + H, (ox + 2 * t) % M :][:, :W], 0, 1
        )
        img = img * (1 - hz[..., None]) + hz[..., None] * np.array([0.85, 0.82, 0.80])
    if seq["blur"] and rng.random() < 0.6:
        k = blur_kernel(rng)
        img = np.stack([ndi.convolve(img[..., c], k, mode="nearest") for c in range(3)], -1)
    img = img * (seq["gain"] * seq["vigmap"] * seq["fov"])[..., None]
    img = img + rng.normal(0, seq["noise"], img.shape)
    outside = seq["fov"] < 0.5
    clean[outside], owner[outside] = 0, -1
    return (np.clip(img, 0, 1) ** (1 / 1.1) * 255 + 0.5).astype(np.uint8), clean, owner


def regions_of(clean, owner):
    """[(instrument, class, bool region)] for every connected part region, far to near."""
    out = []
    for i in np.unique(owner[owner >= 0]):
        for c in (1, 2, 3):
            lab, n = ndi.label((owner == i) & (clean == c))
            out += [(i, c, lab == k) for k in range(1, n + 1)]
    return out


def redraw(m, rng):
    """Annotator-style outline: a 6-15 vertex jittered polygon, or grown / shrunk by 2-6 px."""
    ys, xs = np.nonzero(m)
    y0, y1, x0, x1 = max(ys.min() - 9, 0), ys.max() + 10, max(xs.min() - 9, 0), xs.max() + 10
    sub, new = m[y0:y1, x0:x1], np.zeros_like(m[y0:y1, x0:x1])
    if rng.random() < 0.5:
        cont = max(find_contours(np.pad(sub, 1).astype(np.float32), 0.5), key=len) - 1
        nv = int(rng.integers(6, 16))
        idx = (
            np.linspace(0, len(cont), nv, endpoint=False) + rng.uniform(0, len(cont) / nv)
        ).astype(int)
        v = cont[idx % len(cont)] + rng.normal(0, 1.5, (nv, 2))
        new[draw_polygon(v[:, 0], v[:, 1], sub.shape)] = True
    elif rng.random() < 0.5:
        new = ndi.distance_transform_edt(~sub) <= rng.uniform(2, 6)
    else:
        inner = ndi.distance_transform_edt(sub)
        new = inner > min(rng.uniform(2, 6), 0.5 * inner.max())
    out = np.zeros_like(m)
    out[y0:y1, x0:x1] = new
    return out


def corrupt(kind, regs, rng):
    insts = sorted({i for i, _, _ in regs})
    big = [k for k, (_, _, m) in enumerate(regs) if m.sum() >= 20]
    if kind == "boundary":
        regs = [
            (i, c, redraw(m, rng)) if k in big and rng.random() < 0.5 else (i, c, m)
            for k, (i, c, m) in enumerate(regs)
        ]
    elif kind == "shift" and insts:
        j, mag, a = rng.choice(insts), rng.uniform(4, 12), rng.uniform(0, 2 * np.pi)
        dy, dx = int(round(mag * np.sin(a))), int(round(mag * np.cos(a)))

        def moved(m):
            o = np.zeros_like(m)
            o[max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = m[
                max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
            ]
            return o

        regs = [(i, c, moved(m) if i == j else m) for i, c, m in regs]
    elif kind == "swap" and big:
        cand = [k for k in big if regs[k][1] > 1] or big
        k = cand[rng.integers(len(cand))]
        i, c, m = regs[k]
        regs[k] = (i, int(rng.choice([x for x in (1, 2, 3) if x != c])), m)
    elif kind == "drop" and insts:  # small, partly visible instruments are missed more often
        area = np.array([sum(m.sum() for i, _, m in regs if i == j) for j in insts], float)
        j = rng.choice(insts, p=(1 / area) / (1 / area).sum())
        regs = [r for r in regs if r[0] != j]
    out = np.zeros((H, W), np.uint8)
    for _, c, m in sorted(regs, key=lambda r: (r[0], r[1])):
        out[m] = c
    return out


def noisy_mask(noise, clean, owner, rng):
    """The mask an annotator might have drawn: pure kinds hit FRAME_P of frames, mixed 60%."""
    if rng.random() >= (0.6 if noise == "mixed" else FRAME_P.get(noise, 0.0)):
        return clean.copy()
    kind = rng.choice(list(MIXED_P), p=list(MIXED_P.values())) if noise == "mixed" else noise
    return corrupt(kind, regions_of(clean, owner), rng)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="dataset folder to write")
    ap.add_argument("--noise", choices=NOISES, default="clean")
    for name, default in (("--seed", 0), ("--sequences", 6), ("--frames", 20)):
        ap.add_argument(name, type=int, default=default)
    add_flag(ap)
    a = ap.parse_args(argv)
    require(
        "unseen_family_d.py", ("numpy", "scipy", "skimage", "PIL", "jcas_napari"), a.check_imports
    )
    if a.out is None:
        ap.error("the dataset folder OUT is required")
    from jcas_napari.data.writers import frame_path, write_image, write_mask

    if (Path(a.out) / "masks").exists():
        sys.exit(f"{a.out}/masks exists; write to a new folder")
    rng = np.random.default_rng(a.seed)
    nrng = np.random.default_rng([a.seed, NOISES.index(a.noise)])
    for k in range(a.sequences):
        seq = make_sequence(rng, a.frames)
        for t in range(a.frames):
            img, clean, owner = render_frame(seq, t, rng)
            fid = f"seq_{k}/f{t:02d}"
            write_image(frame_path(a.out, "images", fid), img)
            write_mask(frame_path(a.out, "masks_clean", fid), clean)
            write_mask(frame_path(a.out, "masks", fid), noisy_mask(a.noise, clean, owner, nrng))


if __name__ == "__main__":
    sys.exit(main())
