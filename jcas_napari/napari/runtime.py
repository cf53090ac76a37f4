"""Process-level helpers of the trainer's runs: devices, module preloading, GC freezing.

Kept apart from the widget (trainer.py, which calls them as ``runtime.<name>``) so that
each module stays a readable size.
"""

from __future__ import annotations

import gc


def available_devices() -> list[str]:
    """'auto' plus the devices that really exist here (``core.device``, loaded lazily)."""
    from jcas_napari.core.device import available_devices as devices

    return devices()


def preload_training_modules() -> None:
    """Import what the first training step imports lazily, here on the GUI thread.

    The first optimiser step pulls in torch._dynamo and sympy (about 1 s of imports). Done
    inside the worker, that import held Python's import lock while the GUI thread needed it,
    and napari froze for about 250 ms (benchmarks/bench_gui.py); done here, it is paid
    once when the widget opens.
    """
    import torch._dynamo  # noqa: F401

    import jcas_napari.core.clean  # noqa: F401  (scikit-image's measure module, scipy)
    import jcas_napari.core.train  # noqa: F401


def freeze_long_lived() -> None:
    """Hide the objects alive now from Python's cyclic collector, for one run.

    napari, torch and sympy leave about half a million long-lived objects that every full
    collection walks again while holding the GIL: those passes grew to 250 ms and were the
    GUI's longest stalls during training and when the results arrived
    (benchmarks/bench_gui.py). Frozen objects are still freed by reference counting; the
    trainer calls ``thaw`` when its run is over (results shown, cancelled or failed), so
    the freeze lasts only while a run is in flight and no garbage stays frozen after it.
    """
    gc.freeze()


def thaw() -> None:
    """Undo ``freeze_long_lived``: the collector sees every object again."""
    gc.unfreeze()
