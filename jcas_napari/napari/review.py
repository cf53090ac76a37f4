"""Review of proposed corrections, region by region: the logic (no Qt here).

The annotator walks the change regions worst first. Accepting a region copies the proposed
classes into the reviewed masks; rejecting it restores the original classes. Decisions and
hand-painted strokes share one undo history (multi-level, newest first). Undoing a step puts
back only the pixels that still hold what that step wrote: a later stroke over a decided
region is never discarded by undoing the decision (``ReviewState.kept_on_undo`` counts
the pixels kept). The decisions serialise to JSON, so a review resumes where it stopped;
the file records the fingerprints of the frames, the masks and the proposals it was made
on, and is only resumed over the same ones (region ids are
per cleaning run: the same ``frame:label`` of another model's proposals is another region).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jcas_napari.data.fingerprint import fingerprint
from jcas_napari.data.io import atomic_write_bytes

STATE_VERSION = 2
BINDING_NAMES = {"data": "frames", "masks": "masks", "proposals": "proposals"}
UNDECIDED, CODES = 1, {"accept": 2, "reject": 3}  # values of the changes layer


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
class Change:
    """Pixels one step wrote on one frame: where, what was there, and what it wrote."""

    frame: int
    index: tuple[np.ndarray, np.ndarray]  # (ys, xs) of the pixels
    before: np.ndarray
    after: np.ndarray

    def undo(self, reviewed: np.ndarray) -> int:
        """Put ``before`` back where the pixels still hold ``after``; returns how many
        pixels were left alone because something (a stroke) changed them since."""
        now = reviewed[self.frame][self.index]
        same = now == self.after
        ys, xs = self.index
        reviewed[self.frame][ys[same], xs[same]] = self.before[same]
        return int((~same).sum())


@dataclass
class Step:
    """One entry of the undo history: a decision (``keys`` named) or a painted stroke."""

    kind: str  # "decision" or "paint"
    changes: list[Change]
    keys: list[str] = field(default_factory=list)
    position: int = 0  # the review position before the step
    previous: dict[str, str | None] = field(default_factory=dict)  # decisions before it


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
    _undo: list[Step] = field(default_factory=list)
    # Pixels the last ``undo`` left alone because they were painted after the undone step.
    kept_on_undo: int = 0

    def __post_init__(self) -> None:
        if self.reviewed is None:
            self.reviewed = self.original.copy()
        if self.original.shape != self.proposed.shape:
            # Results of other data (a frame index past the end raised deep in numpy).
            raise ValueError(
                f"the proposals {self.proposed.shape} do not fit the masks "
                f"{self.original.shape}: clean these masks first"
            )

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
        order = [
            RegionRef(i, g.label, g.score, g.bbox, g.from_class, g.to_class)
            for i in frames
            for g in sorted(results[i].region_info, key=lambda g: -g.score)
        ]
        original = np.asarray(original).copy()
        binding = {
            "data": data_id,
            "masks": fingerprint(original),
            "proposals": f"{fingerprint(proposed)}/{fingerprint(regions)}",
        }
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
            index = np.nonzero(self.regions[ref.frame] == ref.label)
            before = self.reviewed[ref.frame][index].copy()
            source = self.proposed if decision == "accept" else self.original
            after = source[ref.frame][index]
            self.reviewed[ref.frame][index] = after
            changes.append(Change(ref.frame, index, before, after.copy()))
            keys.append(ref.key)
        previous = {k: self.decisions.get(k) for k in keys}
        self._undo.append(Step("decision", changes, keys, self.position, previous))
        for k in keys:
            self.decisions[k] = decision
        return sorted({ref.frame for ref in refs})

    def record_paint(self, changes: list[Change]) -> None:
        """Add a hand-painted stroke (already in ``reviewed``) to the undo history."""
        if changes:
            self._undo.append(Step("paint", changes, position=self.position))

    @property
    def last_step(self) -> str | None:
        """What the next undo undoes: "decision", "paint" or None."""
        return self._undo[-1].kind if self._undo else None

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
        return self._apply(
            [r for r in self.order if r.frame == frame and r.key not in self.decisions], "accept"
        )

    def undo(self) -> list[int]:
        """Undo the newest step, a decision or a stroke (multi-level); returns the frames
        changed. ``kept_on_undo`` says how many pixels were kept because they were painted
        after that step."""
        self.kept_on_undo = 0
        if not self._undo:
            return []
        step = self._undo.pop()
        for change in reversed(step.changes):
            self.kept_on_undo += change.undo(self.reviewed)
        for k in step.keys:
            if step.previous[k] is None:
                self.decisions.pop(k, None)
            else:
                self.decisions[k] = step.previous[k]
        if step.kind == "decision":
            self.position = step.position
        return sorted({c.frame for c in step.changes})

    def change_map(self, frame: int) -> np.ndarray:
        """The frame's changed pixels coded by decision: 0 unchanged, 1 undecided,
        2 accepted, 3 rejected (the data of the ``changes`` layer during a review)."""
        regions = self.regions[frame]
        lut = np.zeros(int(regions.max()) + 1, np.uint8)
        lut[1:] = UNDECIDED
        for ref in self.order:
            if ref.frame == frame and ref.label < len(lut):
                lut[ref.label] = CODES.get(self.decisions.get(ref.key), UNDECIDED)
        return lut[regions]

    def counts(self) -> dict[str, int]:
        acc = sum(v == "accept" for v in self.decisions.values())
        return {
            "regions": len(self.order),
            "reviewed": len(self.decisions),
            "accepted": acc,
            "rejected": len(self.decisions) - acc,
        }

    # ------------------------------------------------------------------ persistence

    def save(self, path: os.PathLike | str) -> Path:
        """Autosave the decisions (not the masks: they are re-derived on load), with the
        fingerprints of what they were made on."""
        data = {
            "version": STATE_VERSION,
            "binding": self.binding,
            "position": self.position,
            "decisions": self.decisions,
        }
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


def changes_from_paint(atoms, ndim: int) -> list[Change]:
    """The pixels a napari Labels ``paint`` event changed, as ``Change`` per frame.

    napari gives a stroke as a list of atoms: a masked edit (``slice_key``, ``mask``,
    ``old_values``, ``new_value``; no mask: the whole box changed) or a fancy-index triple
    (indices, old values, new value(s)). ``ndim`` is the layer's (3: T,H,W).
    """
    out = []
    for atom in atoms:
        if hasattr(atom, "slice_key"):
            key, mask = atom.slice_key, atom.mask
            shape = tuple(s.stop - s.start for s in key)
            mask = np.ones(shape, bool) if mask is None else np.asarray(mask)
            local = np.nonzero(mask)
            index = tuple(i + s.start for i, s in zip(local, key))
            old = np.asarray(atom.old_values)
            before = old[mask] if old.shape == mask.shape else old.reshape(-1)
            after = np.broadcast_to(np.asarray(atom.new_value), before.shape)
        else:
            index, before, new = atom
            index = tuple(np.asarray(i) for i in index)
            after = np.broadcast_to(np.asarray(new), np.shape(before))
        if len(index) != ndim or ndim != 3:
            continue  # a 2D single-frame layer: the review's masks are always (T,H,W)
        for t in np.unique(index[0]):
            sel = index[0] == t
            out.append(
                Change(
                    int(t),
                    (index[1][sel], index[2][sel]),
                    np.asarray(before)[sel].copy(),
                    np.asarray(after)[sel].copy(),
                )
            )
    return out
