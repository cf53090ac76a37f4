"""Process-level helpers of the trainer's runs: devices, background preloading, GC freezing.

Kept apart from the widget (trainer.py, which calls them as ``runtime.<name>``) so that
each module stays a readable size. Nothing here touches Qt: the preload runs in a plain
Python thread, and the widget polls ``preload_devices`` from the GUI thread.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import os
import sys
import threading

CHEAP_DEVICES = ["auto", "cpu"]  # what the device list shows until torch is loaded

_lock = threading.Lock()  # guards the freeze count against the preload's GC splice
_state: dict = {"thread": None, "devices": None, "error": None}


def available_devices() -> list[str]:
    """'auto' plus the devices that really exist here (``core.device``, loads torch)."""
    from jcas_napari.core.device import available_devices as devices

    return devices()


def _dlopen_without_gil(paths: list[str]) -> None:
    """Map shared libraries through libc's ``dlopen`` called via ctypes.

    ctypes releases the GIL around a foreign call, so the ~170 ms that the dynamic loader
    spends on libtorch_cpu.so no longer blocks the GUI thread; the later ``import torch``
    finds the library already mapped. ``import torch`` itself (and ``ctypes.CDLL``) load it
    with the GIL held: that was the longest stall of opening the trainer.
    """
    libc = ctypes.CDLL(None)
    libc.dlopen.restype = ctypes.c_void_p
    libc.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    for path in paths:
        if os.path.isfile(path):
            libc.dlopen(path.encode(), os.RTLD_NOW | os.RTLD_LOCAL)


def _torch_libraries() -> list[str]:
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None or not sys.platform.startswith("linux"):
        return []
    lib = os.path.join(os.path.dirname(spec.origin), "lib")
    return [os.path.join(lib, name) for name in ("libtorch_cpu.so", "libtorch_python.so")]


def _import_training_modules() -> list[str]:
    """Import what training and cleaning import (several seconds); return the devices.

    The first optimiser step pulls in torch._dynamo and sympy: imported later inside the
    worker, they held the import lock while the GUI thread needed it (benchmarks/bench_gui.py).
    """
    if "torch" not in sys.modules:
        try:
            _dlopen_without_gil(_torch_libraries())
        except (OSError, AttributeError):  # no libc dlopen here: torch loads it itself
            pass
    import torch._dynamo  # noqa: F401

    import jcas_napari.core.clean  # noqa: F401  (scikit-image's measure module, scipy)
    import jcas_napari.core.train  # noqa: F401

    return available_devices()


def _preload() -> None:
    """The preload thread: imports only, with the cyclic collector paused meanwhile.

    Importing torch creates ~0.5 million objects; the full collections that this
    triggers walked napari's and torch's objects while holding the GIL (stalls of 20-170 ms
    each, measured). The objects made during the pause are moved to the oldest generation
    (a freeze then unfreeze, two list splices) so no collection walks them right away.
    """
    with _lock:
        was_enabled = gc.isenabled()
        gc.disable()
    try:
        _state["devices"] = _import_training_modules()
    except Exception as exc:  # noqa: BLE001 - reported by the widget, not raised here
        _state["error"] = f"{type(exc).__name__}: {exc}"
        _state["devices"] = list(CHEAP_DEVICES)
    finally:
        with _lock:
            if gc.get_freeze_count() == 0:  # no run holds a freeze: splice safely
                gc.freeze()
                gc.unfreeze()
            if was_enabled:
                gc.enable()


def start_preload() -> None:
    """Start importing torch and the training modules in a background thread (once)."""
    with _lock:
        if _state["thread"] is None:
            thread = threading.Thread(target=_preload, name="jcas-preload", daemon=True)
            _state["thread"] = thread
            thread.start()


def preload_devices() -> list[str] | None:
    """The device list once the preload is done, else None (cheap: no waiting)."""
    thread = _state["thread"]
    if thread is None or thread.is_alive():
        return None
    return list(_state["devices"] or CHEAP_DEVICES)


def preload_error() -> str | None:
    """Why the preload failed (then the first Start imports, and reports, again)."""
    return _state["error"]


def freeze_long_lived() -> None:
    """Hide the objects alive now from Python's cyclic collector, for one run.

    napari, torch and sympy leave about half a million long-lived objects that every full
    collection walks again while holding the GIL: those passes grew to 250 ms and were the
    GUI's longest stalls during training and when the results arrived
    (benchmarks/bench_gui.py). Frozen objects are still freed by reference counting; the
    trainer calls ``thaw`` when its run is over (results shown, cancelled or failed), so
    the freeze lasts only while a run is in flight and no garbage stays frozen after it.
    """
    with _lock:
        gc.freeze()


def thaw() -> None:
    """Undo ``freeze_long_lived``: the collector sees every object again."""
    with _lock:
        gc.unfreeze()


def start_worker(worker) -> None:
    """Start a napari worker, keeping a thread of Qt's global pool free.

    napari's workers run in ``QThreadPool.globalInstance()``. Qt converts large images in
    that same pool on the GUI thread's behalf and waits for it, GIL held: napari's
    activity spinner does so when a task starts. With every pool thread (as many as
    cores: two here) in a worker waiting for the GIL, the GUI thread waited forever (a
    deadlock that hung the GUI tests).
    """
    from qtpy.QtCore import QThread, QThreadPool

    pool = QThreadPool.globalInstance()
    # This worker's thread and one free for Qt, and at least two threads more than cores:
    # other widgets start workers without this care, and a worker whose start is still
    # queued (superqt starts it from a timer) is not counted as active yet.
    needed = max(pool.activeThreadCount() + 2, QThread.idealThreadCount() + 2)
    if pool.maxThreadCount() < needed:
        pool.setMaxThreadCount(needed)
    worker.start()


def notify(kind: str, text: str) -> None:
    """One napari notification from the plugin (``kind``: info, warning or error)."""
    from napari.utils import notifications

    getattr(notifications, f"show_{kind}")(f"jcas-napari: {text}")
