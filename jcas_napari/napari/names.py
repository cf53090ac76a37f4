"""Names the napari modules share: layer names and the texts that point to a button.

One place for them, so that a widget looking a layer up, the sample making it and a
message naming it cannot drift apart.
"""

from __future__ import annotations

# Input layers, as the samples and the reader name them.
FRAMES = "frames"
USER_MASKS = "masks"  # the reader's masks/ folder
NOISY_MASKS = "masks (noisy)"  # the samples' noisy masks
TRUTH_MASKS = "masks_clean (truth)"  # the samples' true masks

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
