"""Is napari responsive while JCAS opens, and while it trains in the background?

A 10 ms QTimer records how late each tick fires (the event loop's stall). Opening first,
in this fresh process (torch not yet imported): the sample is opened from the event loop
(File → Open Sample), then the trainer is opened as Plugins → JCAS trainer does, measured
until its background preload of torch is done. Then a few seconds idle, then while the
trainer widget fine-tunes on the sample data; we report the longest and the
99th-percentile stall of each phase, and the longest full (generation 2) collection of
Python's cyclic GC in it, which stalls every thread whoever triggers it. Targets: no stall
> 100 ms while opening, > 50 ms while training. Two reference rows, measured in the same
run: napari adding one empty 1-pixel Labels layer (its own cost of creating a layer,
whatever the data), and cleaning again once the result layers exist (their data is
replaced, no layer is created).

Run (needs a display; here: xvfb-run -a python benchmarks/bench_gui.py [--epochs 3]).
"""

from __future__ import annotations

import argparse
import gc
import platform
import time

import numpy as np
from requires import add_flag, require


def measure(app, seconds: float | None, until=None) -> np.ndarray:
    """Lateness (ms) of each 10 ms timer tick while the event loop runs."""
    from qtpy.QtCore import QEventLoop, QTimer

    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - 10))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    stop = QTimer()
    stop.setInterval(50)
    t0 = time.perf_counter()
    stop.timeout.connect(
        lambda: (
            loop.quit()
            if (seconds and time.perf_counter() - t0 > seconds) or (until and until())
            else None
        )
    )
    timer.start()
    stop.start()
    loop.exec_()
    timer.stop()
    stop.stop()
    return np.array(late[1:])


class GcWatch:
    """The longest full collection (ms) of Python's cyclic GC while the block runs."""

    def __enter__(self) -> GcWatch:
        self.longest, self._t0 = 0.0, 0.0
        gc.callbacks.append(self._on_gc)
        return self

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif info["generation"] == 2:
            self.longest = max(self.longest, (time.perf_counter() - self._t0) * 1000)

    def __exit__(self, *_exc) -> None:
        gc.callbacks.remove(self._on_gc)


def measured(app, action, seconds: float | None = None, until=None) -> tuple:
    """Run ``action`` from the event loop 200 ms into a measurement; (lateness, GC ms, the
    action's own time in ms)."""
    from qtpy.QtCore import QTimer

    took = []

    def run() -> None:
        t0 = time.perf_counter()
        action()
        took.append((time.perf_counter() - t0) * 1000)

    QTimer.singleShot(200, run)
    with GcWatch() as watch:
        late = measure(app, seconds, until=lambda: bool(took) and (until is None or until()))
        if seconds is None:
            late = np.concatenate([late, measure(app, 0.5)])  # the first paints after it
    return late, watch.longest, took[0]


def opening_phases(app, viewer) -> tuple[list, object, dict]:
    """Open the sample, again (napari warm), then the trainer from the plugin menu."""
    from jcas_napari.napari import runtime, sample

    rows, took = [], {}
    t0 = time.perf_counter()
    sample.noisy_sequence()
    took["sample function"] = (time.perf_counter() - t0) * 1000
    late, gc_ms, took["sample"] = measured(
        app, lambda: viewer.open_sample("jcas-napari", "noisy-sequence"), seconds=2.0
    )
    rows.append(("open the sample (the process's first 3 layers)", late, gc_ms))
    before = set(viewer.layers)
    late, gc_ms, took["sample again"] = measured(
        app, lambda: viewer.open_sample("jcas-napari", "noisy-sequence"), seconds=2.0
    )
    rows.append(("open the sample again (3 more layers)", late, gc_ms))
    for layer in [lay for lay in viewer.layers if lay not in before]:
        viewer.layers.remove(layer)
    from qtpy.QtWidgets import QLabel

    late, gc_ms, took["empty dock"] = measured(
        app,
        lambda: viewer.window.add_dock_widget(QLabel("empty"), name="empty", area="right"),
        seconds=1.5,
    )
    rows.append(("reference: napari docks an empty QLabel (the first dock)", late, gc_ms))
    viewer.window.remove_dock_widget("all")
    measure(app, 0.5)
    docked = {}

    def open_trainer() -> None:
        docked["widget"] = viewer.window.add_plugin_dock_widget("jcas-napari", "JCAS trainer")[1]

    late, gc_ms, took["trainer"] = measured(
        app, open_trainer, until=lambda: runtime.preload_devices() is not None
    )
    rows.append(("open the trainer, until torch is loaded in the background", late, gc_ms))
    return rows, docked["widget"], took


def start_cancel_cycles(app, trainer, n: int) -> np.ndarray:
    """Press Start, Cancel 100 ms later, wait for the run to end; ``n`` times, measured."""
    from qtpy.QtCore import QTimer

    left = [n]

    def next_cycle() -> None:
        if left[0] == 0:
            return
        left[0] -= 1
        trainer.start()
        QTimer.singleShot(100, trainer.cancel)

    poll = QTimer()  # starts the next cycle once the last run has ended
    poll.setInterval(20)
    poll.timeout.connect(lambda: trainer.start_btn.isEnabled() and left[0] and next_cycle())
    poll.start()
    late = measure(app, None, until=lambda: left[0] == 0 and trainer.start_btn.isEnabled())
    poll.stop()
    return late


def training_phases(app, viewer, trainer, cycles: int, idle_s: float) -> tuple[list, dict]:
    """Idle, training, cleaning and the result layers, cleaning again, Start/Cancel."""
    from qtpy.QtCore import QTimer

    rows, took = [], {}
    with GcWatch() as watch:
        rows.append(("idle", measure(app, idle_s), watch.longest))
    t0 = time.perf_counter()
    with GcWatch() as watch:
        trainer.start()  # synchronous on the GUI thread: dataset from the layers, worker start
        took["start"] = (time.perf_counter() - t0) * 1000
        busy = measure(
            app,
            None,
            until=lambda: (
                trainer.status.text().startswith("clean") or trainer.start_btn.isEnabled()
            ),
        )
    rows.append(("training in the worker", busy, watch.longest))
    results = {"corrected", "changes", "confidence"}
    with GcWatch() as watch:
        after = measure(
            app,
            None,
            until=lambda: (
                trainer.start_btn.isEnabled() and results <= {lay.name for lay in viewer.layers}
            ),
        )
        after = np.concatenate([after, measure(app, 1.0)])  # drawing the new layers
    rows.append(("cleaning, then adding and drawing 3 layers", after, watch.longest))
    took["run"] = time.perf_counter() - t0
    with GcWatch() as watch:
        trainer.clean()
        again = measure(app, None, until=lambda: trainer.start_btn.isEnabled())
        again = np.concatenate([again, measure(app, 1.0)])
    rows.append(("cleaning again, the 3 layers refreshed", again, watch.longest))
    with GcWatch() as watch:
        late = start_cancel_cycles(app, trainer, cycles)
    rows.append((f"{cycles} Start/Cancel cycles (Start click included)", late, watch.longest))
    QTimer.singleShot(300, lambda: viewer.add_labels(np.zeros((1, 1, 1), np.uint8), name="px"))
    with GcWatch() as watch:
        floor = measure(app, 1.5)
    rows.append(("reference: napari adds one empty 1-pixel Labels layer", floor, watch.longest))
    return rows, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--cycles", type=int, default=20)
    add_flag(ap)
    args = ap.parse_args()
    require("bench_gui.py", ("torch", "napari", "qtpy", "jcas_napari.napari"), args.check_imports)
    import sys

    import napari

    viewer = napari.Viewer()
    app = napari.qt.get_qapp()
    measure(app, 1.0)  # the window's first paints
    torch_before = "torch" in sys.modules
    opening, trainer, took = opening_phases(app, viewer)
    trainer.warmup.setValue(0)
    trainer.jcas.setValue(args.epochs)
    rows, took_run = training_phases(app, viewer, trainer, args.cycles, args.idle)
    import torch

    print(f"Command: xvfb-run -a python benchmarks/bench_gui.py --epochs {args.epochs}")
    print(
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU, "
        f"napari {napari.__version__}; torch imported before opening: {torch_before}"
    )
    print(
        f"On the GUI thread: the sample function {took['sample function']:.0f} ms, "
        f"open_sample {took['sample']:.0f} ms (again {took['sample again']:.0f} ms), "
        f"opening the trainer dock {took['trainer']:.0f} ms (an empty dock "
        f"{took['empty dock']:.0f} ms), the Start click "
        f"{took_run['start']:.0f} ms; training + cleaning took {took_run['run']:.1f} s\n"
    )
    print(
        "| phase | ticks | longest stall ms | p99 stall ms | median stall ms | longest full GC ms |"
    )
    print("|---|---|---|---|---|---|")
    for name, late, gc_ms in opening + rows:
        print(
            f"| {name} | {len(late)} | {late.max():.1f} | {np.percentile(late, 99):.1f} | "
            f"{np.median(late):.1f} | {gc_ms:.0f} |"
        )
    viewer.close()


if __name__ == "__main__":
    main()
