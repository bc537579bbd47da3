"""--mode=eval and --mode=predict on the shared tiny run (conftest ``trained_run``)."""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ssgan_jax.core import checkpoints as ckpt_lib
from ssgan_jax.data import open_prepared
from ssgan_jax.data.camvid import PALETTE
from ssgan_jax.data.cityscapes import to_label_ids
from ssgan_jax.data.common import DataError
from ssgan_jax.data.images import colorize
from ssgan_jax.inference.eval_checkpoint import run_eval
from ssgan_jax.inference.predict import run_predict, write_prediction

from ..cli import run_main

REPO = pathlib.Path(__file__).resolve().parents[2]


def _cfg(trained_run, **eval_values):
    config = copy.deepcopy(trained_run[0])
    for k, v in eval_values.items():
        config.eval[k] = v
    return config


def _logged(workdir, step):
    ckpts = ckpt_lib.Checkpoints(str(workdir), read_only=True)
    return ckpts.read_meta(step)["validation"]


def test_eval_reproduces_logged_validation_and_is_repeatable(trained_run):
    _, workdir, summary = trained_run
    for which, step in (("best", None), ("latest", 8), ("4", 4)):
        result = run_eval(_cfg(trained_run, checkpoint=which), str(workdir))
        step = step or result["step"]
        logged = _logged(workdir, step)
        assert result["step"] == step and result["split"] == "val"
        assert result["miou"] == logged["miou"]  # the same step, the same numbers
        assert result["per_class_iou"] == logged["per_class_iou"]
        for key in ("boundary_f1", "fragmentation", "speckle"):  # region metrics: same too
            assert result[key] == logged[key], key
        assert result["num_images"] == 3 and result["checkpoint"].endswith(f"checkpoints/{step}")
    assert result["miou"] == _logged(workdir, 4)["miou"]
    path = workdir / "eval" / "val_step_4.json"
    first = path.read_bytes()
    again = run_eval(_cfg(trained_run, checkpoint="4"), str(workdir))
    assert path.read_bytes() == first and again["miou"] == result["miou"]
    saved = json.loads(first)
    for key in ("step", "split", "miou", "per_class_iou", "pixel_accuracy", "mean_accuracy",
                "num_images", "checkpoint", "absent_classes", "note"):
        assert key in saved, key
    assert all(v is None or 0.0 <= v <= 1.0 for v in saved["per_class_iou"].values())
    bf = saved["boundary_f1"]
    assert set(bf["per_class"]) == set(saved["per_class_iou"]) and bf["tolerance_px"] > 0
    assert all(v is None or 0.0 <= v <= 1.0 for v in bf["per_class"].values())
    assert bf["mean"] == pytest.approx(np.mean([v for v in bf["per_class"].values()
                                                if v is not None]))
    assert set(saved["fragmentation"]["per_class"]) == set(saved["per_class_iou"])
    assert 0.0 <= saved["speckle"] <= 1.0
    present = [v for v in saved["per_class_iou"].values() if v is not None]
    assert saved["miou"] == pytest.approx(sum(present) / len(present))
    assert summary["miou"] == _logged(workdir, 8)["miou"]


def test_eval_numbers_do_not_move_with_the_padding(trained_run):
    """Each image is computed as alone at its own size: data.eval_size equal to the largest
    val image (56x56), twice that, the run's own (96x64) or "auto" give the same confusion
    matrix up to float rounding (before: mIoU moved by points with the padding)."""
    _, workdir, _ = trained_run
    results = []
    for size in ((56, 56), (112, 112), (96, 64), "auto"):
        cfg = _cfg(trained_run, checkpoint="8")
        cfg.data.eval_size = size
        results.append(run_eval(cfg, str(workdir)))
    # "auto" (a run evaluated without its recorded config): eval resolves it, with the
    # dataset it opened, to the largest prepared image
    shapes = [s for split in ("train", "val", "test")
              for s in open_prepared(cfg.data).class_pixels(split)["shapes"]]
    assert tuple(cfg.data.eval_size) == (max(h for h, _ in shapes), max(w for _, w in shapes))
    base = np.asarray(results[0]["confusion"])
    for other in results[1:]:
        moved = np.abs(np.asarray(other["confusion"]) - base).sum() / 2
        assert moved <= 1e-3 * base.sum(), (moved, base.sum())
        assert abs(other["miou"] - results[0]["miou"]) < 0.002


def test_sliding_window_of_the_whole_padded_image_equals_whole_image(trained_run):
    config, workdir, _ = trained_run
    whole = run_eval(_cfg(trained_run, checkpoint="8"), str(workdir))
    eh, ew = config.data.eval_size
    sliding = run_eval(_cfg(trained_run, checkpoint="8", mode="sliding", window=(eh, ew),
                            stride=(eh, ew)), str(workdir))
    assert sliding["confusion"] == whole["confusion"]
    assert (workdir / "eval" / f"val_step_8_sliding{eh}x{ew}s{eh}x{ew}.json").exists()
    tiled = run_eval(_cfg(trained_run, checkpoint="8", mode="sliding", window=(32, 32),
                          stride=(16, 24), flip=True, scales=(1.0, 0.75)), str(workdir))
    assert tiled["num_pixels"] == whole["num_pixels"] and 0.0 <= tiled["miou"] <= 1.0


def test_eval_errors_name_the_problem(trained_run, tmp_path):
    _, workdir, _ = trained_run
    with pytest.raises(ckpt_lib.CheckpointError, match="no checkpoint in .*Train first"):
        run_eval(_cfg(trained_run), str(tmp_path / "empty"))
    with pytest.raises(ckpt_lib.CheckpointError, match=r"no checkpoint for step 3 .*\[4, 6, 8\]"):
        run_eval(_cfg(trained_run, checkpoint="3"), str(workdir))
    with pytest.raises(ValueError, match="'latest', 'best' or a step"):
        run_eval(_cfg(trained_run, checkpoint="newest"), str(workdir))
    with pytest.raises(DataError, match="no split 'tset'.*'test'"):
        run_eval(_cfg(trained_run, split="tset"), str(workdir))
    other = _cfg(trained_run)
    other.model.width = 16
    with pytest.raises(ckpt_lib.CheckpointError, match="model.width"):
        run_eval(other, str(workdir))


def test_predict_split_files_agree_with_eval(trained_run, tmp_path):
    config, workdir, _ = trained_run
    cfg = _cfg(trained_run, split="test", checkpoint="8")
    cfg.predict.output_dir = str(tmp_path / "pred")
    summary = run_predict(cfg, str(workdir))
    assert summary["images"] == 2 and summary["step"] == 8
    result = run_eval(cfg, str(workdir))
    cm = np.zeros((11, 11), np.int64)
    annot = pathlib.Path(config.data.manual_dir) / "testannot"
    for label_file in sorted(annot.iterdir()):
        stem = label_file.stem
        pred = np.array(Image.open(tmp_path / "pred" / "train_ids" / f"{stem}.png"))
        label = np.array(Image.open(label_file)).astype(np.int64)
        assert pred.shape == label.shape and pred.max() < 11
        color = np.array(Image.open(tmp_path / "pred" / "color" / f"{stem}.png"))
        np.testing.assert_array_equal(color, np.array(PALETTE, np.uint8)[pred])
        overlay = Image.open(tmp_path / "pred" / "overlay" / f"{stem}.jpg")
        assert overlay.size == (label.shape[1], label.shape[0])
        keep = label != 11  # CamVid void
        cm += np.bincount(label[keep] * 11 + pred[keep], minlength=121).reshape(11, 11)
    np.testing.assert_array_equal(cm, np.array(result["confusion"]))
    assert not (tmp_path / "pred" / "label_ids").exists()  # Cityscapes only


def test_predict_glob_errors(trained_run, tmp_path):
    _, workdir, _ = trained_run
    cfg = _cfg(trained_run)
    cfg.predict.output_dir = str(tmp_path / "out")
    cfg.predict.input = str(tmp_path / "none" / "*.jpg")
    with pytest.raises(DataError, match="matches no file"):
        run_predict(cfg, str(workdir))
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.jpg").write_bytes(b"not a jpeg")
    cfg.predict.input = str(tmp_path / "in" / "*")
    with pytest.raises(DataError, match=r"b\.jpg: cannot decode image.*skip_unreadable"):
        run_predict(cfg, str(workdir))
    cfg.predict.skip_unreadable = True  # skipped, said and counted
    skipping = run_predict(cfg, str(workdir))
    assert skipping["images"] == 1 and skipping["skipped_unreadable"] == [
        str(tmp_path / "in" / "b.jpg")]
    cfg.predict.skip_unreadable = False
    (tmp_path / "in" / "b.jpg").unlink()
    # a CMYK JPEG and a 16-bit grey PNG convert (to RGB; 16 bits scaled to 8)
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(tmp_path / "in" / "cmyk.jpg")
    Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(tmp_path / "in" / "deep.png")
    from ssgan_jax.data.common import decode_rgb

    red = decode_rgb((tmp_path / "in" / "cmyk.jpg").read_bytes(), "cmyk.jpg")
    assert red.shape == (20, 30, 3) and red[..., 0].min() > 200 and red[..., 1].max() < 60
    grey = decode_rgb((tmp_path / "in" / "deep.png").read_bytes(), "deep.png")
    assert grey.shape == (20, 30, 3) and (grey == round(40000 / 257)).all()
    assert run_predict(cfg, str(workdir))["images"] == 3
    for name in ("cmyk", "deep"):
        (tmp_path / "in" / f"{name}.{'jpg' if name == 'cmyk' else 'png'}").unlink()
    # an image larger than data.eval_size (96x64) is predicted through sliding windows
    Image.fromarray(np.zeros((200, 30, 3), np.uint8)).save(tmp_path / "in" / "c.png")
    assert run_predict(cfg, str(workdir))["images"] == 2
    assert np.array(Image.open(tmp_path / "out" / "train_ids" / "a.png")).shape == (20, 30)
    assert np.array(Image.open(tmp_path / "out" / "train_ids" / "c.png")).shape == (200, 30)


def test_cityscapes_label_ids_named_for_the_server(tmp_path):
    pred = np.array([[0, 1, 10], [11, 13, 18]], np.uint8)  # trainIds
    image = np.full((2, 3, 3), 100, np.uint8)
    paths = write_prediction(str(tmp_path), "berlin_000000_000019_leftImg8bit.png", image, pred,
                             [(0, 0, 0)] * 19, 0.5, to_label_ids)
    assert paths["label_ids"].endswith("label_ids/berlin_000000_000019_leftImg8bit.png")
    label_ids = np.array(Image.open(paths["label_ids"]))
    np.testing.assert_array_equal(label_ids, [[7, 8, 23], [24, 26, 33]])  # road ... bicycle
    np.testing.assert_array_equal(colorize(np.array([[2, 200]]), [(1, 2, 3)] * 3),
                                  [[[1, 2, 3], [0, 0, 0]]])


@pytest.mark.slow
def test_eval_from_the_command_line(trained_run, tmp_path):
    config, workdir, _ = trained_run
    (tmp_path / "cfg.json").write_text(config.to_json())
    (tmp_path / "cfg.py").write_text(
        "import json, ml_collections\n"
        "def get_config(arg=None):\n"
        f"    return ml_collections.ConfigDict(json.load(open({str(tmp_path / 'cfg.json')!r})))\n")
    r = run_main(f"--config={tmp_path / 'cfg.py'}", f"--workdir={workdir}", "--mode=eval",
              "--config.eval.checkpoint=best")
    assert r.returncode == 0, r.stderr[-3000:]
    step = ckpt_lib.Checkpoints(str(workdir), read_only=True).best_step()
    best = json.loads((workdir / "eval" / f"val_step_{step}.json").read_text())
    assert "Pavement" in r.stdout and f"{100 * best['miou']:7.2f}" in r.stdout
    r = run_main(f"--config={tmp_path / 'cfg.py'}", f"--workdir={workdir}", "--mode=eval",
              "--config.eval.checkpoint=5")
    assert r.returncode == 1 and "error: no checkpoint for step 5" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_main(f"--config={tmp_path / 'cfg.py'}", f"--workdir={workdir}", "--mode=export",
              "--config.eval.checkpoint=best", f"--config.export.output_dir={tmp_path / 'e'}")
    assert r.returncode == 0, r.stderr[-3000:]
    exported = json.loads((tmp_path / "e" / "export.json").read_text())
    assert exported["source"]["step"] == step and exported["platforms"] == ["cpu", "cuda"]


def test_segmenter_from_workdir_runs_the_checkpoint(trained_run):
    """ssgan_jax.Segmenter.from_workdir: the run's config, normalisation and checkpoint; its
    prediction equals the forward pass of the image alone, at every size bucket."""
    import jax.numpy as jnp

    from ssgan_jax import Segmenter
    from ssgan_jax.core.errors import ConfigError
    from ssgan_jax.data.classes import CAMVID
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.tta import from_config, make_predict_fn

    config, workdir, _ = trained_run
    seg = Segmenter.from_workdir(str(workdir), checkpoint=4, bucket=32)
    assert seg.step == 4 and seg.class_names == CAMVID
    assert seg.source.endswith("checkpoints/4")
    image = np.asarray(Image.open(pathlib.Path(config.data.manual_dir) / "val" / "val_000.png"))
    h, w = image.shape[:2]  # 40 x 56
    loaded = load_generator(_cfg(trained_run, checkpoint="4"), str(workdir))
    x = (image / 255.0 - np.asarray(config.data.mean)) / np.asarray(config.data.std)
    predict = make_predict_fn(loaded.generator, from_config(config))
    alone = np.asarray(predict(loaded.variables, jnp.asarray(x[None], jnp.float32))[0])
    np.testing.assert_array_equal(seg.predict(image), alone)
    for bucket in (64, 128):  # any padding: the same classes as the image alone
        other = Segmenter.from_workdir(str(workdir), checkpoint=4, bucket=bucket)
        assert np.mean(other.predict(image) == alone) >= 0.999
    assert seg.probabilities(image).shape == (h, w, len(CAMVID))
    with pytest.raises(ConfigError, match="unknown inference setting 'flipp'"):
        Segmenter.from_workdir(str(workdir), flipp=True)
    with pytest.raises(ConfigError, match="config.json does not exist"):
        Segmenter.from_workdir(str(workdir / "checkpoints"))


def test_export_reloads_equal_to_jax_and_serves_through_segmenter(trained_run, tmp_path):
    """--mode=export: G alone as StableHLO with the normalisation inside, reloaded with
    jax.export.deserialize equal to the JAX forward pass; Segmenter.from_export serves it."""
    import jax

    from ssgan_jax import Segmenter
    from ssgan_jax.core.errors import UserError
    from ssgan_jax.data.classes import CAMVID
    from ssgan_jax.data.images import padding_colour
    from ssgan_jax.inference.export import (
        META_FILE,
        MODEL_FILE,
        load_export,
        run_export,
        serving_fn,
    )
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.segmenter import InputError
    from ssgan_jax.inference.tta import from_config

    config, workdir, _ = trained_run
    cfg = _cfg(trained_run, checkpoint="4")
    cfg.export.output_dir = str(tmp_path / "export")
    cfg.export.size = (64, 64)
    cfg.export.platforms = ("cpu",)  # the command-line test below lowers for CUDA too
    meta = run_export(cfg, str(workdir))
    assert (tmp_path / "export" / MODEL_FILE).stat().st_size > 10_000
    assert meta["check"] == {"images": 2, "max_abs_logit_diff": 0.0, "argmax_agreement": 1.0}
    assert meta["class_names"] == list(CAMVID) and meta["source"]["step"] == 4
    assert meta["input"]["shape"] == ["N", 64, 64, 3] and meta["input"]["dtype"] == "uint8"
    assert meta["input"]["padding_rgb"] == padding_colour(config.data.mean) == [124, 116, 104]
    assert meta["platforms"] == ["cpu"] and meta["source"]["config"]["model"]["name"]
    on_disk = json.loads((tmp_path / "export" / META_FILE).read_text())
    assert on_disk["source"]["run"] == str(workdir)
    exported, _ = load_export(str(tmp_path / "export"))
    loaded = load_generator(cfg, str(workdir))
    serve = serving_fn(loaded.generator, loaded.variables, config.data.mean, config.data.std,
                       from_config(cfg))
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    sizes = np.asarray([[64, 64], [40, 56], [9, 33]], np.int32)
    np.testing.assert_array_equal(np.asarray(exported.call(images, sizes)),
                                  np.asarray(jax.jit(serve)(images, sizes)))  # any batch size
    # the Python API on the export: same classes as on the checkpoint (each image computed
    # alone in both), one compilation per batch bucket, not per image size
    seg = Segmenter.from_export(str(tmp_path / "export"))
    ref = Segmenter.from_workdir(str(workdir), checkpoint=4, bucket=64)
    a = np.asarray(Image.open(pathlib.Path(config.data.manual_dir) / "val" / "val_000.png"))
    b = a[:30, :50]
    preds = seg.predict([a, b])
    assert [p.shape for p in preds] == [a.shape[:2], b.shape[:2]] and seg.compilations == 1
    for got, want in zip(preds, ref.predict([a, b]), strict=True):
        assert np.mean(got == want) >= 0.999
    seg.predict(a)
    assert seg.compilations == 2 and seg.step == 4  # batch bucket 1: a second program
    with pytest.raises(InputError, match="larger than the exported model's 64x64"):
        seg.predict(np.zeros((65, 10, 3), np.uint8))
    with pytest.raises(InputError, match="dtype float32"):
        seg.predict(np.zeros((8, 8, 3), np.float32))
    # one-line errors: a step that is not kept, another run's export folder, a missing export
    with pytest.raises(ckpt_lib.CheckpointError, match="no checkpoint for step 3"):
        run_export(_cfg(trained_run, checkpoint="3"), str(workdir))
    on_disk["source"]["run"] = "/elsewhere/run"
    (tmp_path / "export" / META_FILE).write_text(json.dumps(on_disk))
    with pytest.raises(UserError, match="holds the export of another run"):
        run_export(cfg, str(workdir))
    with pytest.raises(UserError, match="does not exist: give the folder --mode=export wrote"):
        Segmenter.from_export(str(tmp_path / "nowhere"))


def test_loading_g_restores_g_alone_equal_to_the_whole_state(trained_run, monkeypatch):
    """load_generator (eval, predict, export, Segmenter, init_from) reads G's subtree of the
    checkpoint only: neither the adversary nor an optimizer state is restored, and what it
    returns equals G in the whole saved state."""
    import jax

    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.training.experiment import Experiment

    config, workdir, _ = trained_run
    restored_parts = []
    real = ckpt_lib.Checkpoints.restore_part

    def spy(self, target, step):
        restored_parts.append(real(self, target, step))
        return restored_parts[-1]

    monkeypatch.setattr(ckpt_lib.Checkpoints, "restore_part", spy)
    monkeypatch.setattr(ckpt_lib.Checkpoints, "restore",
                        lambda *a, **k: pytest.fail("the whole train state was restored"))
    loaded = load_generator(_cfg(trained_run, checkpoint="8"), str(workdir))
    monkeypatch.undo()
    (part,) = restored_parts
    assert set(part.state) == {"g_params"}  # FCN-8s: no BatchNorm statistics
    assert set(loaded.variables) == {"params"} and loaded.step == 8
    target = Experiment(config, 11).state_template(2)
    whole = ckpt_lib.Checkpoints(str(workdir), read_only=True).restore(
        jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), target), 8).state
    jax.tree.map(np.testing.assert_array_equal, loaded.variables["params"], whole.g_params)


def test_inference_imports_no_optimizer_and_no_adversary(trained_run):
    """Segmenter.from_workdir + predict, in a fresh process: no optax, no training wing, no
    adversary module imported."""
    _, workdir, _ = trained_run
    code = (
        "import sys, numpy as np\n"
        "from ssgan_jax import Segmenter\n"
        f"seg = Segmenter.from_workdir({str(workdir)!r}, checkpoint='latest')\n"
        "assert seg.predict(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'optax' or m.startswith(\n"
        "    ('ssgan_jax.training', 'ssgan_jax.models.adversary'))))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_init_from_a_run_whose_adversary_has_another_width(trained_run, tmp_path, capsys):
    """Phase 2 from a GAN run's G with a differently sized adversary: G is taken alone
    (neither the source's adversary nor its optimizers), and the run trains."""
    import jax

    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.training import loop

    config, workdir, _ = trained_run
    config = copy.deepcopy(config)
    config.adversary.width, config.adversary.trunk_features = 16, (4, 4, 4, 4)
    config.init_from = f"{workdir}:4"
    config.phase1.steps, config.phase2.steps = 0, 2
    config.train.eval_every = config.train.checkpoint_every = 2
    loop.train_and_evaluate(config, str(tmp_path / "p2"))
    assert f"generator from {workdir} step 4 (init_from)" in capsys.readouterr().out
    new = ckpt_lib.Checkpoints(str(tmp_path / "p2"), read_only=True)
    assert new.steps() == [2]
    source = load_generator(_cfg(trained_run, checkpoint="4"), str(workdir)).variables
    mine = load_generator(copy.deepcopy(config), str(tmp_path / "p2"), 2).variables
    diffs = [float(np.abs(a - b).max()) for a, b in zip(
        jax.tree.leaves(source), jax.tree.leaves(mine), strict=True)]
    # trained on from step 4's G: two Adam steps move no weight by much more than 2 lr (a
    # fresh G would differ by the size of the weights)
    assert 0 < max(diffs) <= 10 * config.phase2.lr


def test_read_only_paths_fall_back_past_a_corrupt_newest_checkpoint(trained_run, tmp_path,
                                                                    capsys):
    """eval, export and Segmenter on "latest" use the next older checkpoint when the newest
    does not restore (a warning names it, nothing is moved); a step asked for by number is
    refused in one line naming the other steps."""
    import shutil

    from ssgan_jax import Segmenter
    from ssgan_jax.core.checkpoints import UnreadableCheckpoint
    from ssgan_jax.inference.generator import load_generator

    _, workdir, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(workdir, run, ignore=shutil.ignore_patterns("eval", "export", "predictions",
                                                                "*.lock"))
    for f in (run / "checkpoints" / "8" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    loaded = load_generator(_cfg(trained_run, checkpoint="latest"), str(run))
    assert loaded.step < 8
    assert "checkpoint 8" in capsys.readouterr().out
    result = run_eval(_cfg(trained_run, checkpoint="latest"), str(run))
    assert result["step"] == loaded.step
    assert Segmenter.from_workdir(str(run), checkpoint="latest").step == loaded.step
    with pytest.raises(UnreadableCheckpoint, match=r"checkpoint 8 .*cannot be restored.*steps "
                                                   r"that may restore: \[4"):
        load_generator(_cfg(trained_run, checkpoint="8"), str(run))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before  # nothing moved


def test_a_checkpoint_removed_while_being_read_is_not_called_corrupt(trained_run, tmp_path,
                                                                    monkeypatch, capsys):
    """A training run's retention can delete the checkpoint an eval beside it is reading:
    "latest" is resolved again; a step asked for by number says it was removed, not that it
    is corrupt (the advice used to be "retrain")."""
    import shutil

    from ssgan_jax.core import checkpoints as ckpt_lib
    from ssgan_jax.inference.generator import load_generator

    _, workdir, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(workdir, run, ignore=shutil.ignore_patterns("eval", "export", "predictions",
                                                                "*.lock"))
    real = ckpt_lib.Checkpoints.restore_part

    def removed_midway(self, target, step):
        if step == 8 and (run / "checkpoints" / "8").exists():
            shutil.rmtree(run / "checkpoints" / "8")  # retention, mid-read
            raise ckpt_lib.UnreadableCheckpoint("gone", 8, "FileNotFoundError")
        return real(self, target, step)

    monkeypatch.setattr(ckpt_lib.Checkpoints, "restore_part", removed_midway)
    loaded = load_generator(_cfg(trained_run, checkpoint="latest"), str(run))
    assert loaded.step == 6
    assert "checkpoint 8 was removed while it was being read" in capsys.readouterr().out
    shutil.rmtree(run)
    shutil.copytree(workdir, run, ignore=shutil.ignore_patterns("eval", "export", "predictions",
                                                                "*.lock"))
    with pytest.raises(ckpt_lib.CheckpointError, match=r"checkpoint 8 .* was removed while it "
                                                       r"was being read .* it is not corrupt"):
        load_generator(_cfg(trained_run, checkpoint="8"), str(run))


def test_export_leaves_a_folder_of_someone_elses_files_alone(trained_run, tmp_path):
    from ssgan_jax.inference.export import ExportError, run_export

    _, workdir, _ = trained_run
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "model.onnx").write_bytes(b"my own model")
    cfg = _cfg(trained_run, checkpoint="4")
    cfg.export.output_dir = str(theirs)
    with pytest.raises(ExportError, match=r"holds model.onnx but no export.json: not an export "
                                          r"of this run, so it is left as it is"):
        run_export(cfg, str(workdir))
    assert (theirs / "model.onnx").read_bytes() == b"my own model"
    assert sorted(p.name for p in theirs.iterdir()) == ["model.onnx"]
