"""Pixel affinities and DAR (differentiated affinity reasoning).

Shapes: B batch, C classes, D feature channels, (h, w) the affinity grid, N = h*w.

- ``S = affinity(f)``: cosine similarity of ReLU'd, L2-normalised features, clamped to
  [1e-10, 1]; ``S[b, u, v]`` is the affinity of grid pixels u and v.
- ``refine(z, S) = z + 1/2 (A - Abar) z`` with ``A = S / rowsum(S)`` (aggregate evidence
  from similar pixels) and ``Abar = (1 - S) / rowsum(1 - S)`` (remove evidence from
  dissimilar pixels). ``1 - S`` is built block by block (see ``_combine``).
- ``refine_chunked(z, f)`` computes the same from the features, a block of rows of S at a
  time, for grids too large to hold S (memory O(chunk * N) instead of O(N^2)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

S_MIN = 1e-10
EPS = 1e-9


def to_grid(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=True, as the official code) of [B,*,h0,w0] to grid."""
    if tuple(x.shape[-2:]) == tuple(grid):
        return x
    return F.interpolate(x, size=tuple(grid), mode="bilinear", align_corners=True)


def embed(features: torch.Tensor) -> torch.Tensor:
    """[B,D,h,w] -> [B,N,D]: ReLU, then unit L2 norm per pixel (eps 1e-9)."""
    u = F.relu(features).flatten(2).transpose(1, 2)
    return u / (u.norm(dim=2, keepdim=True) + EPS)


def affinity(features: torch.Tensor) -> torch.Tensor:
    """features [B,D,h,w] -> S [B,N,N] in [1e-10, 1]."""
    u = embed(features)
    return torch.bmm(u, u.transpose(1, 2)).clamp(S_MIN, 1.0)


NEAR_ONE = 0.01  # rows whose rowsum(1 - S) is under 1% of N get 1 - S built exactly


def _combine(z: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S z / rowsum S and (1 - S) z / rowsum(1 - S) for a block of rows.

    z [B,N,C] (all pixels), s [B,n',N] (a block of rows of S); returns the aggregated and
    the eliminated evidence, each [B,n',C]. ``(1 - S) z`` is computed as ``sum z - S z``
    (no second N x N product), except for rows where rowsum(1 - S) is tiny: there that
    difference cancels to rounding noise, which lost all float32 precision, so those rows
    build 1 - S exactly.
    """
    n = z.shape[1]
    sz = torch.bmm(s, z)
    rows = s.sum(2, keepdim=True)
    agg = sz / (rows + EPS)
    rest = n - rows
    elim = (z.sum(1, keepdim=True) - sz) / (rest + EPS).clamp(min=1e-6)
    near = rest[..., 0] < NEAR_ONE * n  # [B,n']
    if bool(near.any()):
        bi, ri = near.nonzero(as_tuple=True)
        d = 1.0 - s[bi, ri]  # [m,N]: only the rows that need it
        exact = torch.bmm(d[:, None], z[bi])[:, 0] / (d.sum(1, keepdim=True) + EPS)
        elim = elim.index_put((bi, ri), exact)
    return agg, elim


def refine(logits: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """logits [B,C,h,w], S [B,N,N] -> DAR-refined logits [B,C,h,w]."""
    b, c, h, w = logits.shape
    z = logits.flatten(2).transpose(1, 2)  # [B,N,C]
    agg, elim = _combine(z, s)
    out = z + 0.5 * (agg - elim)
    return out.transpose(1, 2).reshape(b, c, h, w)


def refine_chunked(logits: torch.Tensor, features: torch.Tensor, chunk: int = 1024):
    """Same as ``refine(logits, affinity(features))`` without holding S: [B,C,h,w]."""
    b, c, h, w = logits.shape
    n = h * w
    z = logits.flatten(2).transpose(1, 2)
    u = embed(features)
    parts = []
    for start in range(0, n, chunk):
        s = torch.bmm(u[:, start : start + chunk], u.transpose(1, 2)).clamp(S_MIN, 1.0)
        agg, elim = _combine(z, s)
        parts.append(z[:, start : start + chunk] + 0.5 * (agg - elim))
    return torch.cat(parts, 1).transpose(1, 2).reshape(b, c, h, w)


def dar(logits: torch.Tensor, features: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """DAR on one level at the grid of ``logits``/``features`` (both [B,*,h,w]).

    Uses the dense path up to 64x64 grids, the chunked path above (or when ``chunk`` is
    given).
    """
    n = logits.shape[-2] * logits.shape[-1]
    if chunk is None and n <= 64 * 64:
        return refine(logits, affinity(features))
    return refine_chunked(logits, features, chunk or 1024)


def pixel_affinity(features: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """Affinity map [B,h,w] of grid pixel (y, x) to every grid pixel: what DAR aggregates."""
    b, _, h, w = features.shape
    u = embed(features)
    return (u @ u[:, y * w + x, :, None]).clamp(S_MIN, 1.0).reshape(b, h, w)
