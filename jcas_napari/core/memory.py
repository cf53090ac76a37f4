"""Handing freed memory back to the operating system after a run."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl)
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Return the heap pages freed by a finished run to the OS (glibc ``malloc_trim``).

    Each training run in the GUI runs on a worker thread with its own malloc arena; glibc
    keeps what the run freed (the model, optimiser and batches) in that arena, so resident
    memory grew by about 14 MiB per start/cancel cycle while nothing leaked. Returns False
    where there is nothing to call (macOS, Windows, musl).
    """
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
