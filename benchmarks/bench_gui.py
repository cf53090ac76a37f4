"""Is napari responsive while JCAS trains in the background?

A 10 ms QTimer records how late each tick fires (the event loop's stall). We measure it
for a few seconds idle, then while the trainer widget fine-tunes on the sample data, and
report the longest and the 99th-percentile stall of each phase. Target: no stall > 50 ms.
Two reference rows, measured in the same run: napari adding one empty 1-pixel Labels layer
(its own cost of creating a layer, whatever the data), and cleaning again once the result
layers exist (their data is replaced, no layer is created).

Run (needs a display; here: xvfb-run -a python benchmarks/bench_gui.py [--epochs 3]).
"""

from __future__ import annotations

import argparse
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
    stop.timeout.connect(lambda: loop.quit() if (seconds and time.perf_counter() - t0 > seconds)
                         or (until and until()) else None)  # fmt: skip
    timer.start()
    stop.start()
    loop.exec_()
    timer.stop()
    stop.stop()
    return np.array(late[1:])


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--cycles", type=int, default=20)
    add_flag(ap)
    args = ap.parse_args()
    require("bench_gui.py", ("torch", "napari", "qtpy", "jcas_napari.napari"), args.check_imports)
    import napari
    import torch
    from qtpy.QtCore import QTimer

    from jcas_napari.napari.trainer import TrainerWidget

    viewer = napari.Viewer()
    viewer.open_sample("jcas-napari", "noisy-sequence")
    trainer = TrainerWidget(viewer)
    viewer.window.add_dock_widget(trainer, area="right")
    trainer.warmup.setValue(0)
    trainer.jcas.setValue(args.epochs)
    app = napari.qt.get_qapp()
    idle = measure(app, args.idle)
    t0 = time.perf_counter()
    trainer.start()  # synchronous on the GUI thread: dataset from the layers, worker start
    start_ms = (time.perf_counter() - t0) * 1000
    busy = measure(app, None, until=lambda: trainer.status.text().startswith("clean")
                   or trainer.start_btn.isEnabled())  # fmt: skip
    after = measure(app, None, until=lambda: trainer.start_btn.isEnabled()
                    and {"corrected", "changes", "confidence"}
                    <= {lay.name for lay in viewer.layers})
    after = np.concatenate([after, measure(app, 1.0)])  # drawing the new layers
    took = time.perf_counter() - t0
    trainer.clean()
    again = measure(app, None, until=lambda: trainer.start_btn.isEnabled())
    again = np.concatenate([again, measure(app, 1.0)])
    cycles = start_cancel_cycles(app, trainer, args.cycles)
    QTimer.singleShot(300, lambda: viewer.add_labels(np.zeros((1, 1, 1), np.uint8), name="px"))
    floor = measure(app, 1.5)
    print(f"Command: xvfb-run -a python benchmarks/bench_gui.py --epochs {args.epochs}")
    print(f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU, "
          f"napari {napari.__version__}; the Start click took {start_ms:.0f} ms on the GUI thread; "
          f"training + cleaning took {took:.1f} s\n")
    print("| phase | ticks | longest stall ms | p99 stall ms | median stall ms |")
    print("|---|---|---|---|---|")
    for name, late in (("idle", idle), ("training in the worker", busy),
                       ("cleaning, then adding and drawing 3 layers", after),
                       ("cleaning again, the 3 layers refreshed", again),
                       (f"{args.cycles} Start/Cancel cycles (Start click included)", cycles),
                       ("reference: napari adds one empty 1-pixel Labels layer", floor)):
        print(f"| {name} | {len(late)} | {late.max():.1f} | {np.percentile(late, 99):.1f} | "
              f"{np.median(late):.1f} |")
    viewer.close()


if __name__ == "__main__":
    main()
