"""Review of proposed corrections, region by region: the logic (no Qt here).

The annotator walks the change regions worst first. Accepting a region copies the proposed
classes into the reviewed masks; rejecting it restores the original classes. Every decision
can be undone (multi-level). The decisions serialise to JSON, so a review resumes where it
stopped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jcas_napari.data.io import atomic_write_bytes


@dataclass(frozen=True)
class RegionRef:
    frame: int
    label: int  # id in the frame's region map
    score: float
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1

    @property
    def key(self) -> str:
        return f"{self.frame}:{self.label}"

    @property
    def centre(self) -> tuple[float, float]:
        y0, x0, y1, x1 = self.bbox
        return (y0 + y1) / 2, (x0 + x1) / 2


@dataclass
class ReviewState:
    """Decisions over the regions of proposed changes.

    ``original``, ``proposed``, ``reviewed`` are (T,H,W) arrays; ``regions`` (T,H,W) int
    region ids per frame. ``reviewed`` starts as a copy of ``original`` and is edited in
    place (it is the data of the napari ``reviewed`` layer).
    """

    original: np.ndarray
    proposed: np.ndarray
    regions: np.ndarray
    order: list[RegionRef]
    reviewed: np.ndarray = None  # type: ignore[assignment]
    decisions: dict[str, str] = field(default_factory=dict)
    position: int = 0
    _undo: list[tuple[list[str], list[tuple[int, np.ndarray, np.ndarray]], int]] = field(
        default_factory=list)  # fmt: skip

    def __post_init__(self) -> None:
        if self.reviewed is None:
            self.reviewed = self.original.copy()

    @classmethod
    def from_results(cls, original: np.ndarray, results) -> ReviewState:
        """Build from cleaning results (one per frame, in frame order), worst frames first,
        then the highest-scoring regions first within a frame."""
        proposed = np.stack([r.proposed for r in results])
        regions = np.stack([r.regions for r in results])
        frames = sorted(range(len(results)), key=lambda i: -results[i].noise_score)
        order = [RegionRef(i, reg.label, reg.score, reg.bbox) for i in frames
                 for reg in sorted(results[i].region_info, key=lambda g: -g.score)]  # fmt: skip
        return cls(np.asarray(original).copy(), proposed, regions, order)

    # ------------------------------------------------------------------ navigation

    @property
    def current(self) -> RegionRef | None:
        return self.order[self.position] if self.order else None

    def next(self) -> RegionRef | None:
        if self.order:
            self.position = min(self.position + 1, len(self.order) - 1)
        return self.current

    def previous(self) -> RegionRef | None:
        self.position = max(self.position - 1, 0)
        return self.current

    def next_undecided(self) -> RegionRef | None:
        for j in range(self.position, len(self.order)):
            if self.order[j].key not in self.decisions:
                self.position = j
                return self.order[j]
        return self.current

    # ------------------------------------------------------------------ decisions

    def _apply(self, refs: list[RegionRef], decision: str) -> list[int]:
        changes, keys = [], []
        for ref in refs:
            sel = np.nonzero(self.regions[ref.frame] == ref.label)
            before = self.reviewed[ref.frame][sel].copy()
            source = self.proposed if decision == "accept" else self.original
            self.reviewed[ref.frame][sel] = source[ref.frame][sel]
            changes.append((ref.frame, np.stack(sel), before))
            keys.append(ref.key)
        previous = {k: self.decisions.get(k) for k in keys}
        self._undo.append((keys, changes, self.position, previous))
        for k in keys:
            self.decisions[k] = decision
        return sorted({ref.frame for ref in refs})

    def accept(self) -> list[int]:
        """Accept the current region; returns the frames changed."""
        return self._apply([self.current], "accept") if self.current else []

    def reject(self) -> list[int]:
        """Reject the current region (restore the original classes there)."""
        return self._apply([self.current], "reject") if self.current else []

    def accept_frame(self) -> list[int]:
        """Accept every region of the current region's frame."""
        if not self.current:
            return []
        frame = self.current.frame
        return self._apply([r for r in self.order if r.frame == frame], "accept")

    def undo(self) -> list[int]:
        """Undo the last decision (multi-level); returns the frames changed."""
        if not self._undo:
            return []
        keys, changes, position, previous = self._undo.pop()
        for frame, idx, before in changes:
            self.reviewed[frame][tuple(idx)] = before
        for k in keys:
            if previous[k] is None:
                self.decisions.pop(k, None)
            else:
                self.decisions[k] = previous[k]
        self.position = position
        return sorted({c[0] for c in changes})

    def counts(self) -> dict[str, int]:
        acc = sum(v == "accept" for v in self.decisions.values())
        return {"regions": len(self.order), "reviewed": len(self.decisions), "accepted": acc,
                "rejected": len(self.decisions) - acc}  # fmt: skip

    # ------------------------------------------------------------------ persistence

    def save(self, path: os.PathLike | str) -> Path:
        """Autosave the decisions (not the masks: they are re-derived on load)."""
        data = {"version": 1, "position": self.position, "decisions": self.decisions}
        return atomic_write_bytes(path, json.dumps(data, indent=1).encode())

    def load(self, path: os.PathLike | str) -> int:
        """Replay saved decisions onto the reviewed masks; returns how many were applied."""
        data = json.loads(Path(path).read_text())
        by_key = {r.key: r for r in self.order}
        n = 0
        for key, decision in data.get("decisions", {}).items():
            if key in by_key and decision in ("accept", "reject"):
                self._apply([by_key[key]], decision)
                n += 1
        self._undo.clear()
        self.position = min(int(data.get("position", 0)), max(len(self.order) - 1, 0))
        return n
