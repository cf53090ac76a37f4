"""Frame names for the widgets: the dataset's frame ids (``seq_02/frame004``), not indices."""

from __future__ import annotations


def frame_ids(layer, count: int) -> list[str]:
    """The ids of the ``count`` frames of ``layer`` (reader metadata ``frame_ids``).

    Layers without ids (samples, layers made by hand) get ``frame <index>``; so do ids of
    another length (the layer was edited): a wrong name is worse than an index.
    """
    ids = (getattr(layer, "metadata", None) or {}).get("frame_ids") if layer else None
    if ids is not None and len(ids) == count:
        return [str(i) for i in ids]
    return [f"frame {i}" for i in range(count)]


def frame_id(layer, index: int, count: int | None = None) -> str:
    """The id of frame ``index`` of ``layer`` (see ``frame_ids``)."""
    n = count if count is not None else len(getattr(layer, "data", ())) or index + 1
    names = frame_ids(layer, n)
    return names[index] if 0 <= index < len(names) else f"frame {index}"
