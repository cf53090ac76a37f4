"""Content fingerprints of arrays: what a result, a review or a trained model was made on.

Names say nothing about content (a reopened dataset has the same layer names; in-memory
frames are named by position), so identity is checked on the data itself. Napari-free.
"""

from __future__ import annotations

import hashlib

import numpy as np

FULL_LIMIT = 256 * 2**20  # bytes hashed in full (~0.2 s); above it a sample is hashed


def fingerprint(data, limit: int = FULL_LIMIT) -> str:
    """Shape, dtype and a hash of the content of an array (a cheap content identity).

    Up to ``limit`` bytes the whole content is hashed, so a single painted pixel changes
    it. Larger arrays (big image stacks) hash an evenly strided sample of about ``limit``
    bytes: a whole-stack hash on every check would stall the GUI, and such data is
    replaced (a new array, caught by the shape or the sample), not painted pixel by pixel.
    """
    arr = np.asarray(data)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{arr.shape}|{arr.dtype.str}|".encode())
    flat = np.ascontiguousarray(arr).reshape(-1) if arr.size else arr.reshape(-1)
    if flat.nbytes > limit:
        step = -(-flat.nbytes // limit)  # rounded up: at most ``limit`` bytes are hashed
        flat = np.ascontiguousarray(flat[::step])
    h.update(flat.view(np.uint8) if flat.size else b"")
    return f"{'x'.join(map(str, arr.shape))}:{arr.dtype.str}:{h.hexdigest()}"
