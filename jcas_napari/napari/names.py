"""Names the napari modules share: layer names, the texts that point to a button, and
frame names (the dataset's frame ids, ``seq_02/frame004``, not indices).

One place for them, so that a widget looking a layer up, the sample making it and a
message naming it cannot drift apart.
"""

from __future__ import annotations

# Input layers, as the samples and the reader name them.
FRAMES = "frames"
USER_MASKS = "masks"  # the reader's masks/ folder
NOISY_MASKS = "masks (noisy)"  # the samples' noisy masks
TRUTH_MASKS = "masks_clean (truth)"  # the samples' true masks
TRUTH_FILE_MASKS = "masks_clean"  # the reader's masks_clean/ folder (ground truth)

# Layers the widgets make from results: never an input to train on or to review.
CORRECTED = "corrected"
CHANGES = "changes"
CONFIDENCE = "confidence"
REVIEWED = "reviewed"
AFFINITY = "affinity"
RESULT_LAYERS = (CORRECTED, CHANGES, REVIEWED, AFFINITY, CONFIDENCE)

# Widget titles (napari.yaml's display names) and the trainer's buttons named in messages.
TRAINER_TITLE = "JCAS trainer"
CLEAN_BUTTON = "Clean with this model"


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
