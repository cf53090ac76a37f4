"""Review of proposed corrections, region by region: the logic (no Qt here).

The annotator walks the change regions worst first. Accepting a region copies the proposed
classes into the reviewed masks; rejecting it restores the original classes. Every decision
can be undone (multi-level). The decisions serialise to JSON, so a review resumes where it
stopped; the file records the fingerprints of the frames, the masks and the proposals it
was made on, and is only resumed over the same ones (region ids are per cleaning run: the
same ``frame:label`` of another model's proposals is another region).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jcas_napari.data.io import atomic_write_bytes
from jcas_napari.napari.provenance import fingerprint

STATE_VERSION = 2
BINDING_NAMES = {"data": "frames", "masks": "masks", "proposals": "proposals"}


class ReviewMismatch(ValueError):
    """Saved decisions that belong to other data, masks or proposals than this review's."""


@dataclass(frozen=True)
class RegionRef:
    frame: int
    label: int  # id in the frame's region map
    score: float
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1
    from_class: int = -1  # the given class it replaces (most common), -1 if unknown
    to_class: int = -1  # the proposed class

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
    # Fingerprints of what the decisions are about ("data", "masks", "proposals").
    binding: dict[str, str] = field(default_factory=dict)
    _undo: list[tuple[list[str], list[tuple[int, np.ndarray, np.ndarray]], int, dict]] = field(
        default_factory=list)  # fmt: skip

    def __post_init__(self) -> None:
        if self.reviewed is None:
            self.reviewed = self.original.copy()
        if self.original.shape != self.proposed.shape:
            # Results of other data (a frame index past the end raised deep in numpy).
            raise ValueError(f"the proposals {self.proposed.shape} do not fit the masks "
                             f"{self.original.shape}: clean these masks first")  # fmt: skip

    @classmethod
    def from_results(cls, original: np.ndarray, results, data_id: str = "") -> ReviewState:
        """Build from cleaning results (one per frame, in frame order), worst frames first,
        then the highest-scoring regions first within a frame.

        ``data_id`` identifies the frames that were cleaned (their fingerprint); it goes
        into the saved state with the fingerprints of the masks and the proposals.
        """
        proposed = np.stack([r.proposed for r in results])
        regions = np.stack([r.regions for r in results])
        frames = sorted(range(len(results)), key=lambda i: -results[i].noise_score)
        order = [RegionRef(i, g.label, g.score, g.bbox, g.from_class, g.to_class) for i in frames
                 for g in sorted(results[i].region_info, key=lambda g: -g.score)]  # fmt: skip
        original = np.asarray(original).copy()
        binding = {"data": data_id, "masks": fingerprint(original),
                   "proposals": f"{fingerprint(proposed)}/{fingerprint(regions)}"}  # fmt: skip
        return cls(original, proposed, regions, order, binding=binding)

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
        if not refs:
            return []  # nothing to do: no empty step on the undo stack either
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
        """Accept the undecided regions of the current region's frame.

        Regions already decided keep their decision: an explicit reject is the user's word
        on that region, and a bulk accept must not overturn it.
        """
        if not self.current:
            return []
        frame = self.current.frame
        return self._apply([r for r in self.order if r.frame == frame
                            and r.key not in self.decisions], "accept")  # fmt: skip

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
        """Autosave the decisions (not the masks: they are re-derived on load), with the
        fingerprints of what they were made on."""
        data = {"version": STATE_VERSION, "binding": self.binding, "position": self.position,
                "decisions": self.decisions}  # fmt: skip
        return atomic_write_bytes(path, json.dumps(data, indent=1).encode())

    def check_binding(self, data: dict) -> None:
        """Raise ``ReviewMismatch`` unless saved ``data`` was made on this review's data."""
        saved = data.get("binding")
        if not isinstance(saved, dict) or not self.binding:
            raise ReviewMismatch("the saved review does not record what it belongs to")
        differ = [BINDING_NAMES[k] for k in BINDING_NAMES if saved.get(k) != self.binding.get(k)]
        if differ:
            raise ReviewMismatch(f"the saved review belongs to other {' and '.join(differ)}")

    def load(self, path: os.PathLike | str) -> int:
        """Replay saved decisions onto the reviewed masks; returns how many were applied.

        Raises ``ReviewMismatch`` (nothing applied) when the file was saved over other
        frames, masks or proposals: its ``frame:label`` keys would name other regions.
        """
        data = json.loads(Path(path).read_text())
        self.check_binding(data)
        by_key = {r.key: r for r in self.order}
        n = 0
        for key, decision in data.get("decisions", {}).items():
            if key in by_key and decision in ("accept", "reject"):
                self._apply([by_key[key]], decision)
                n += 1
        self._undo.clear()
        self.position = min(int(data.get("position", 0)), max(len(self.order) - 1, 0))
        return n
