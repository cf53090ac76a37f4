"""napari-free JCAS core. Submodules import torch themselves; this package does not."""
