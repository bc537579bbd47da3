"""Your own dataset (data/folder.py): a folder and a classes file, prepared, trained on and
evaluated like the shipped builders; bad folders give one line naming the file."""

from __future__ import annotations

import json
import os
import shutil

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ssgan_jax.data import classes as camvid_classes
from ssgan_jax.data import open_prepared, prepare
from ssgan_jax.data.camvid import PALETTE
from ssgan_jax.data.common import DataError

from .conftest import read_split, write_camvid

SPLITS = {"train": 8, "val": 3, "test": 2}


def _classes_file(root, **extra):
    body = {"classes": [{"name": n, "color": list(c)}
                        for n, c in zip(camvid_classes.CAMVID, PALETTE, strict=True)],
            "ignore": 255, **extra}
    path = os.path.join(root, "classes.json")
    with open(path, "w") as f:
        json.dump(body, f)
    return path


def _as_folder(camvid_dir, root, encoding="index"):
    """The CamVid layout's images and labels as a folder dataset: the same image files (PNG
    for train and val, re-saved as JPEG for test in both), labels shifted by one with void as
    0 (mmsegmentation's reduce_zero_label in reverse), train's as palette PNGs; or, with
    ``encoding="color"``, RGB PNGs in CamVid's colours (void black)."""
    for split in SPLITS:
        os.makedirs(os.path.join(root, split, "images"))
        os.makedirs(os.path.join(root, split, "labels"))
        for name in sorted(os.listdir(os.path.join(camvid_dir, split))):
            stem = os.path.splitext(name)[0]
            src = os.path.join(camvid_dir, split, name)
            if split == "test":  # a JPEG, in both layouts
                jpg = os.path.join(camvid_dir, split, stem + ".jpg")
                Image.open(src).save(jpg, quality=90)
                os.remove(src)
                src = jpg
            shutil.copy(src, os.path.join(root, split, "images", os.path.basename(src)))
            raw = np.array(Image.open(os.path.join(camvid_dir, split + "annot", stem + ".png")))
            out = os.path.join(root, split, "labels", stem + ".png")
            if encoding == "color":
                table = np.zeros((256, 3), np.uint8)
                table[:11] = PALETTE
                Image.fromarray(table[raw]).save(out)
                continue
            shifted = np.where(raw == 11, 0, raw + 1).astype(np.uint8)
            im = Image.fromarray(shifted, mode="L")
            if split == "train":
                im = im.convert("P")  # palette PNG: the indices are the values
                im.putpalette(np.random.default_rng(0).integers(0, 256, 768).tolist())
            im.save(out)
    values = {"0": "ignore", **{str(i + 1): i for i in range(11)}}
    if encoding == "color":
        _classes_file(root, encoding="color", ignore_color=[0, 0, 0])
    else:
        _classes_file(root, values=values)
    return root


def _config(tmp_path, manual_dir, name="folder"):
    from tests.train_fixtures import tiny_config

    config = tiny_config(tmp_path / name, "fcn8s_vgg16")
    config.data.name = name
    config.data.manual_dir = manual_dir
    config.data.data_dir = str(tmp_path / name / "tfds")
    return ml_collections.ConfigDict(config)


@pytest.fixture
def layouts(tmp_path):
    camvid_dir = write_camvid(str(tmp_path / "CamVid"), sizes=SPLITS)
    folder_dir = _as_folder(camvid_dir, str(tmp_path / "mine"))
    return camvid_dir, folder_dir


@pytest.mark.slow
def test_a_folder_dataset_trains_and_evaluates_as_the_camvid_builder(tmp_path, layouts):
    from ssgan_jax.core import parallel
    from ssgan_jax.inference.evaluator import evaluate_split, make_eval_step
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.tta import from_config
    from ssgan_jax.training.loop import train_and_evaluate

    camvid_dir, folder_dir = layouts
    mine, camvid = _config(tmp_path, folder_dir), _config(tmp_path, camvid_dir, "camvid")
    report = prepare(mine.data)
    assert report["splits"] == {"test": 2, "train": 8, "val": 3}
    assert report["image_sizes"]["train"]["largest"] == [96, 56]  # 40 + 8 i rows, 56 columns
    assert report["image_sizes"]["val"]["HxW"] == {"40x56": 1, "48x56": 1, "56x56": 1}
    shares = report["class_pixel_share"]["train"]
    assert set(shares) == set(camvid_classes.CAMVID)
    assert sum(shares.values()) == pytest.approx(1, abs=1e-4)
    prepare(camvid.data)
    for split in SPLITS:  # the same images and labels as the CamVid builder's
        ours = {n: (x, y) for n, x, y in read_split(mine.data, split)}
        theirs = {n: (x, y) for n, x, y in read_split(camvid.data, split)}
        assert sorted(ours) == sorted(theirs)
        for name, (x, y) in ours.items():
            np.testing.assert_array_equal(x, theirs[name][0])
            np.testing.assert_array_equal(y, theirs[name][1])

    mine.phase1.steps, mine.phase2.steps = 2, 0
    mine.train.eval_every = mine.train.checkpoint_every = 2
    mine.eval.split = "test"
    train_and_evaluate(mine, str(tmp_path / "run"))
    loaded = load_generator(mine, str(tmp_path / "run"))
    step = parallel.pmap_eval(make_eval_step(loaded.generator, 11, 255, from_config(mine)))
    variables = parallel.on_devices(loaded.variables)
    names = camvid_classes.CAMVID
    a = evaluate_split(mine, step, variables, "test", 11, names,
                       dataset=open_prepared(mine.data))
    b = evaluate_split(camvid, step, variables, "test", 11, names,
                       dataset=open_prepared(camvid.data))
    np.testing.assert_array_equal(a["confusion"], b["confusion"])
    assert np.asarray(a["confusion"]).sum() > 0


def test_colour_coded_labels_map_through_the_palette(tmp_path):
    camvid_dir = write_camvid(str(tmp_path / "CamVid"), sizes=SPLITS)
    folder_dir = _as_folder(camvid_dir, str(tmp_path / "mine"), encoding="color")
    mine, camvid = _config(tmp_path, folder_dir), _config(tmp_path, camvid_dir, "camvid")
    prepare(mine.data)
    prepare(camvid.data)
    ours = {n: y for n, _, y in read_split(mine.data, "train")}
    for name, _, y in read_split(camvid.data, "train"):
        np.testing.assert_array_equal(ours[name], y)


def _bad(tmp_path, layouts, match, edit):
    _, folder_dir = layouts
    edit(folder_dir)
    with pytest.raises(DataError, match=match):
        prepare(_config(tmp_path, folder_dir).data)


def test_bad_folders_name_the_file(tmp_path, layouts):
    def unknown_value(root):
        path = os.path.join(root, "val", "labels", "val_001.png")
        lab = np.array(Image.open(path))
        lab[0, 0] = 77
        Image.fromarray(lab).save(path)

    _bad(tmp_path, layouts, r"val_001\.png: label values \[77\] are neither", unknown_value)


def test_an_image_without_a_label_and_a_size_mismatch(tmp_path, layouts):
    _, root = layouts
    os.remove(os.path.join(root, "train", "labels", "train_003.png"))
    with pytest.raises(DataError, match=r"train_003\.png has no label: expected .*labels"):
        prepare(_config(tmp_path / "a", root).data)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(
        os.path.join(root, "train", "labels", "train_003.png"))
    with pytest.raises(DataError, match=r"size mismatch: image .*train_003\.png is 56x64"):
        prepare(_config(tmp_path / "b", root).data)


@pytest.mark.parametrize("body, match", [
    ({"classes": ["a", "b", "a"], "ignore": 255}, r"unique; \['a'\] appear more than once"),
    ({"classes": ["a", "b"]}, r"'ignore' is missing"),
    ({"classes": ["a", "b"], "ignore": 1}, r"'ignore' must be an integer in 2\.\.255"),
    ({"classes": [], "ignore": 255}, r"non-empty list"),
    ({"classes": ["a"], "ignore": 255, "encoding": "color"}, r"need a 'color' for every"),
])
def test_bad_classes_files_say_what_is_wrong(tmp_path, layouts, body, match):
    _, root = layouts
    with open(os.path.join(root, "classes.json"), "w") as f:
        json.dump(body, f)
    with pytest.raises(DataError, match=r"classes\.json: .*" + match):
        prepare(_config(tmp_path, root).data)


def test_classes_files_that_would_silently_mislabel_are_refused(tmp_path, layouts):
    """A value given twice (plain JSON keeps the last: Pole would become Tree), two spellings
    of one value, and 'id' fields that disagree with the list order (which decides the
    index) are errors; a partial 'values' map names 'values' when a label is not in it."""
    _, root = layouts
    path = os.path.join(root, "classes.json")
    good = open(path).read()
    twice = good.replace('"values": {', '"values": {"2": 5, ')
    assert twice != good
    open(path, "w").write(twice)
    with pytest.raises(DataError, match=r"classes\.json: the key '2' appears twice"):
        prepare(_config(tmp_path / "a", root).data)
    body = json.loads(good)
    body["values"]["02"] = 3
    json.dump(body, open(path, "w"))
    with pytest.raises(DataError, match=r"'values' gives the label value 2 twice \('2' and "
                                        r"'02'\)"):
        prepare(_config(tmp_path / "b", root).data)
    body = json.loads(good)
    body["classes"][0]["id"], body["classes"][1]["id"] = 1, 0
    json.dump(body, open(path, "w"))
    with pytest.raises(DataError, match=r"class 'Sky' has 'id' 1 but is entry 0"):
        prepare(_config(tmp_path / "c", root).data)
    body = json.loads(good)
    for i, c in enumerate(body["classes"]):
        c["id"] = i  # ids that agree with the order are fine
    del body["values"]["11"]  # label value 11 (Bicyclist) now maps to nothing
    json.dump(body, open(path, "w"))
    with pytest.raises(DataError, match=r"label values \[11\] .*'values' maps only the label "
                                        r"values \[0, 1, .*10\] .*add the missing ones"):
        prepare(_config(tmp_path / "d", root).data)


def test_a_broken_link_among_the_images_is_named(tmp_path, layouts):
    _, root = layouts
    link = os.path.join(root, "train", "images", "zz_broken.png")
    os.symlink(os.path.join(root, "gone.png"), link)
    with pytest.raises(DataError, match=r"zz_broken\.png is a symbolic link to .*gone\.png, "
                                        r"which does not exist"):
        prepare(_config(tmp_path, root).data)


def test_an_empty_split_and_another_classes_file(tmp_path, layouts):
    _, root = layouts
    config = _config(tmp_path, root)
    prepare(config.data)
    # the same folder with another classes file is another dataset: refused, not reused
    path = os.path.join(root, "classes.json")
    body = json.load(open(path))
    body["classes"][0]["name"] = "heaven"
    json.dump(body, open(path, "w"))
    from ssgan_jax.data import source

    source._checked.clear()
    with pytest.raises(DataError, match=r"prepared with another classes_sha256"):
        prepare(config.data)
    for f in os.listdir(os.path.join(root, "val", "images")):
        os.remove(os.path.join(root, "val", "images", f))
    with pytest.raises(DataError, match=r"split 'val' is empty"):
        prepare(_config(tmp_path / "b", root).data)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path):
    """README "Your own dataset": its commands, with /tmp replaced by this test's folder."""
    import re
    import shlex
    import sys

    from launch.tools.camvid_as_folder import main as lay_out
    from tests.cli import REPO, run_main

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Your own dataset"):text.index("## Train")]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[0].replace("\\\n", " ")
    commands = [shlex.split(line.replace("/tmp/", f"{tmp_path}/"))
                for line in block.splitlines() if line.strip()]
    assert [c[2] for c in commands] == ["launch.tools.camvid_as_folder"] + ["ssgan_jax.main"] * 3
    argv = sys.argv
    try:
        sys.argv = ["camvid_as_folder", *commands[0][3:]]
        lay_out()
    finally:
        sys.argv = argv
    outputs = []
    for command in commands[1:]:
        r = run_main(*command[3:])
        assert r.returncode == 0, r.stderr[-3000:]
        outputs.append(r.stdout)
    report = json.loads([ln for ln in outputs[0].splitlines() if ln.startswith("{")][-1])
    assert report["splits"] == {"test": 16, "train": 40, "val": 16}
    assert report["image_sizes"]["train"]["largest"] == [90, 120]
    result = json.loads((tmp_path / "my_run" / "eval" / "test_step_20.json").read_text())
    assert result["dataset"] == "folder" and len(result["per_class_iou"]) == 11
    assert 0 < result["miou"] <= 1


def test_a_list_file_selects_a_split_and_names_missing_images(tmp_path, layouts):
    _, root = layouts
    config = _config(tmp_path, root)
    config.data.folder.list_file = "{split}.txt"
    for split in SPLITS:
        with open(os.path.join(root, f"{split}.txt"), "w") as f:
            f.write(f"{split}_001\n{split}_000\n")
    assert prepare(config.data)["splits"] == {"test": 2, "train": 2, "val": 2}
    assert sorted(n for n, _, _ in read_split(config.data, "train")) == [
        "train_000.png", "train_001.png"]
    with open(os.path.join(root, "val.txt"), "a") as f:
        f.write("val_999\n")
    with pytest.raises(DataError, match=r"val\.txt lists \['val_999'\] \(1 in all\) without an "
                                        r"image"):
        other = _config(tmp_path / "b", root)
        other.data.folder.list_file = "{split}.txt"
        prepare(other.data)


def test_the_folder_dataset_is_an_entry_of_the_one_registry(tmp_path):
    """Every dataset a run can name, the folder dataset included, answers the same three
    questions through ``data.DATASETS`` (no TFDS needed for class names and identity)."""
    from ssgan_jax import data
    from ssgan_jax.core.errors import ConfigError
    from ssgan_jax.data import folder

    assert sorted(data.DATASETS) == ["camvid", "cityscapes", "folder", "voc2012_aug"]
    root = tmp_path / "mine"
    root.mkdir()
    path = _classes_file(str(root))
    config = _config(tmp_path, str(root))
    assert data.class_names(config.data) == camvid_classes.CAMVID
    assert data.identity(config.data) == {
        "classes_sha256": folder.read_classes(path).sha256}
    assert data.builder_class(config.data).CLASS_NAMES == camvid_classes.CAMVID
    config.data.name = "camvid"
    assert data.identity(config.data) == {}
    assert data.class_names(config.data) == camvid_classes.CAMVID
    config.data.name = "ade20k"
    with pytest.raises(ConfigError, match=r"must be one of \['camvid', 'cityscapes', "
                                          r"'folder', 'voc2012_aug'\]; got 'ade20k'"):
        data.class_names(config.data)
