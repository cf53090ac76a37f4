"""jcas-napari: clean noisy surgical-instrument segmentation masks with JCAS.

The package splits into napari-free layers:

- :mod:`jcas_napari.data`: datasets on disk, synthetic surgical scenes, label-noise models;
- :mod:`jcas_napari.core`: model, losses, training, cleaning and metrics;
- :mod:`jcas_napari.napari`: the napari plugin (the only place that imports Qt).
"""

__version__ = "0.1.0"

ENDOVIS_PART_CLASSES = ("background", "shaft", "wrist", "clasper")
IGNORE_INDEX = 255
