"""Your own generator, metric and loss term, no fork: a Flax module in a package outside
``ssgan_jax`` named ``--config.model.name=module:Class`` goes through every mode the built-in
ones do (README, "Your own generator"), a metric named in ``eval.metrics`` reaches the eval
JSON, the table and validation's logs (README, "Your own metric"), and the README's loss term
named in ``loss.extra_terms`` trains and is logged (README, "Your own loss term"); the
registries' errors name what is wrong."""

from __future__ import annotations

import copy
import json
import pathlib
import re
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from .cli import run_main
from .data.conftest import read_split
from .train_fixtures import tiny_config

# a 3-level U-Net that is not told its images' sizes (no ``sizes`` argument)
UNET = '''
import flax.linen as nn
import jax.numpy as jnp


class UNet(nn.Module):
    num_classes: int
    features: int = 8

    @nn.compact
    def __call__(self, images, train: bool = False):
        skips, x = [], images
        for level in range(3):
            x = nn.relu(nn.Conv(self.features << level, (3, 3))(x))
            skips.append(x)
            x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(self.features << 3, (3, 3))(x))
        for level in reversed(range(3)):
            skip = skips[level]
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
            x = jnp.pad(x, ((0, 0), (0, skip.shape[1] - x.shape[1]),
                            (0, skip.shape[2] - x.shape[2]), (0, 0)))
            x = nn.relu(nn.Conv(self.features << level, (3, 3))(jnp.concatenate([x, skip], -1)))
        return nn.Conv(self.num_classes, (1, 1))(x)


def wrong_shape(num_classes):  # a factory whose module returns a quarter-size map
    return _Quarter(num_classes)


class _Quarter(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, images, train: bool = False):
        return nn.Conv(self.num_classes, (4, 4), strides=(4, 4))(images)
'''


# a metric: each class's share of the predicted pixels where the label is not ignore
SHARE = '''
import numpy as np


class ClassShare:
    def __init__(self, num_classes, ignore_label):
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.counts = np.zeros(num_classes)

    def add(self, pred, label):
        kept = pred[label != self.ignore_label]
        self.counts += np.bincount(kept.ravel(), minlength=self.num_classes)

    def state(self):
        return self.counts.copy()

    def load_state(self, state):
        self.counts = np.asarray(state, np.float64).copy()
        return self

    def summary(self, class_names=None):
        names = class_names or [str(c) for c in range(self.num_classes)]
        total = self.counts.sum()
        share = {n: float(c / total) if total else None for n, c in zip(names, self.counts)}
        return {"class_share": {"per_class": share,
                                "max": max(share.values()) if total else None}}

    def scalars(self, summary):
        return {"class_share_max": summary["class_share"]["max"]}

    def columns(self, summary):
        return [("share %", summary["class_share"]["per_class"], summary["class_share"]["max"],
                 100.0)]

    def describe(self, summary):
        return f"largest predicted class share {100 * summary['class_share']['max']:.2f}%"


class OnlyAdd:  # not a metric: the rest of the interface is missing
    def __init__(self, num_classes, ignore_label):
        pass

    def add(self, pred, label):
        pass
'''


def readme_loss_term() -> str:
    """The code of README's "Your own loss term" example, as a user would copy it."""
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Your own loss term", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def my_nets(tmp_path, monkeypatch):
    """``my_nets.unet``, ``my_nets.share`` and ``my_nets.terms`` (README's loss term)
    importable from a folder outside the repository."""
    root = tmp_path / "outside"
    (root / "my_nets").mkdir(parents=True)
    (root / "my_nets" / "__init__.py").write_text("")
    (root / "my_nets" / "unet.py").write_text(UNET)
    (root / "my_nets" / "share.py").write_text(SHARE)
    (root / "my_nets" / "terms.py").write_text(readme_loss_term())
    monkeypatch.syspath_prepend(str(root))
    yield "my_nets.unet"
    for name in [m for m in sys.modules if m.split(".")[0] == "my_nets"]:
        del sys.modules[name]


def _config_file(config, tmp_path):
    """A config file for ``config`` (the command line's overrides need its field types)."""
    (tmp_path / "cfg.json").write_text(config.to_json())
    (tmp_path / "cfg.py").write_text(
        "import json\n"
        "from ssgan_jax.core import config as default\n"
        "def get_config(arg=None):\n"
        "    config = default.get_config()\n"
        f"    config.update(json.load(open({str(tmp_path / 'cfg.json')!r})))\n"
        "    config.data.eval_size = tuple(config.data.eval_size)\n"
        "    return config\n")
    return f"--config={tmp_path / 'cfg.py'}"


def _alone(loaded, config, image):
    """G's classes for ``image`` computed on its own, at its own size."""
    x = (image / 255.0 - np.asarray(config.data.mean)) / np.asarray(config.data.std)
    logits = loaded.generator.apply(loaded.variables, x[None].astype(np.float32), train=False)
    return np.asarray(logits[0]).argmax(-1)


@pytest.mark.slow
def test_own_generator_in_every_mode(my_nets, tmp_path):
    from ssgan_jax import Segmenter
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.metrics import confusion_matrix, summarize

    config = tiny_config(tmp_path)
    config.model.name = f"{my_nets}:UNet"
    config.model.kwargs = ml_collections.ConfigDict({"features": 4})
    config.eval.metrics = (f"{my_nets.rsplit('.', 1)[0]}.share:ClassShare",)
    config.loss.extra_terms = ("my_nets.terms:total_variation=0.1",)
    cfg, workdir = _config_file(config, tmp_path), tmp_path / "run"
    run = (cfg, f"--workdir={workdir}")
    r = run_main(*run, "--mode=prepare")
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_main(*run)  # phase 1, then phase 2 with the adversary, validated
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert any("train/loss_d" in row for row in rows), "phase 2 trained no adversary"
    assert any("val/miou" in row for row in rows)
    assert any(0 < row.get("val/class_share_max", 0) <= 1 for row in rows)  # your metric
    # your loss term, in both phases: loss_g = ce (+ lam adv) + 0.1 tv
    trained = [row for row in rows if "train/total_variation" in row]
    assert {row["train/phase"] for row in trained} == {1, 2}
    assert all(row["train/total_variation"] > 0 for row in trained)
    phase1 = [row for row in trained if row["train/phase"] == 1]
    assert all(row["train/loss_g"] == pytest.approx(
        row["train/ce"] + 0.1 * row["train/total_variation"], rel=1e-4) for row in phase1)
    assert "largest predicted class share" in r.stdout
    progress = [ln for ln in r.stdout.splitlines() if re.match(r"\[phase \d\] step \d+/", ln)]
    assert progress and all(" total_variation " in ln for ln in progress)  # your term shown
    recorded = json.loads((workdir / "config.json").read_text())
    assert recorded["model"]["name"] == "my_nets.unet:UNet"
    assert recorded["model"]["kwargs"] == {"features": 4}
    r = run_main(*run, "--config.phase2.steps=4")  # resumes at step 6, one more iteration
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in r.stdout and "step 6" in r.stdout
    # semi-supervised phase 2: a quarter of the train split labelled, the rest unlabelled
    r = run_main(cfg, f"--workdir={tmp_path / 'semi'}", "--config.data.labeled=0.25",
                 "--config.semi.unlabeled_batch_size=4", "--config.phase1.steps=1",
                 "--config.phase2.steps=2")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line)
            for line in (tmp_path / "semi" / "metrics.jsonl").read_text().splitlines()]
    assert any("train/adv_unlabeled" in row for row in rows), sorted(rows[-1])

    # eval: every test image (40x56 and 48x56 on a 96x64 canvas) on its own canvas, so the
    # numbers are those of the images computed alone
    r = run_main(*run, "--mode=eval", "--config.eval.checkpoint=latest",
                 "--config.eval.split=test")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 not of data.eval_size (96, 64) alone on their own canvas" in r.stdout
    result = json.loads(next((workdir / "eval").glob("test_step_7*.json")).read_text())
    loaded_cfg = copy.deepcopy(config)
    loaded_cfg.eval.checkpoint = "latest"
    loaded = load_generator(loaded_cfg, str(workdir))
    assert loaded.step == 7
    test = read_split(loaded_cfg.data, "test")
    confusion = sum(np.asarray(confusion_matrix(_alone(loaded, config, image), label, 11))
                    for _, image, label in test)
    want = summarize(np.asarray(confusion), None)
    assert result["num_images"] == 2 and result["confusion"] == np.asarray(confusion).tolist()
    assert result["miou"] == pytest.approx(want["miou"])
    # your metric: in the JSON (equal to the confusion matrix's predicted shares) and table
    predicted = np.asarray(confusion).sum(0) / np.asarray(confusion).sum()
    assert list(result["class_share"]["per_class"].values()) == pytest.approx(predicted)
    assert "share %" in r.stdout.splitlines()[next(
        i for i, line in enumerate(r.stdout.splitlines()) if line.startswith("class "))]
    # another canvas: the same numbers (a generator not told sizes never sees padding)
    r = run_main(*run, "--mode=eval", "--config.eval.checkpoint=latest",
                 "--config.eval.split=test", "--config.data.eval_size=(128, 128)")
    assert r.returncode == 0, r.stderr[-3000:]
    other = json.loads(next((workdir / "eval").glob("test_step_7_cfg*.json")).read_text())
    assert other["confusion"] == result["confusion"]

    # predict: each image's class map is the one computed alone
    r = run_main(*run, "--mode=predict", "--config.eval.checkpoint=latest",
                 "--config.eval.split=test", f"--config.predict.output_dir={tmp_path / 'pred'}")
    assert r.returncode == 0, r.stderr[-3000:]
    for name, image, _ in test:
        png = tmp_path / "pred" / "train_ids" / (name.rsplit(".", 1)[0] + ".png")
        np.testing.assert_array_equal(np.asarray(Image.open(png)),
                                      _alone(loaded, config, image))

    # Segmenter from the run: the same, for any bucket; it never trains, so it needs the
    # generator's module but not the loss term's
    terms = pathlib.Path(sys.modules["my_nets.terms"].__file__)
    terms.rename(terms.with_suffix(".moved"))
    del sys.modules["my_nets.terms"]
    val_000 = np.asarray(Image.open(f"{config.data.manual_dir}/val/val_000.png"))  # 40 x 56
    seg = Segmenter.from_workdir(str(workdir), checkpoint="latest", bucket=64)
    assert "my_nets.terms" not in sys.modules
    np.testing.assert_array_equal(seg.predict(val_000), _alone(loaded, config, val_000))

    # export (StableHLO, and ONNX where the export extra is installed), at the images' size
    formats = "stablehlo,onnx"
    try:
        import jax2onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        formats = "stablehlo"
    r = run_main(*run, "--mode=export", "--config.eval.checkpoint=latest",
                 "--config.export.size=(40, 56)", f"--config.export.formats={formats}",
                 f"--config.export.output_dir={tmp_path / 'export'}")
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "export" / "export.json").read_text())
    assert meta["own_canvas"] is True and "not taken" in meta["input"]["smaller_images"]
    for check in meta["checks"].values():
        assert check["argmax_agreement"] >= 0.9999 and check["max_abs_logit_diff"] < 1e-3
    assert sorted(meta["checks"]) == sorted(formats.split(","))
    served = Segmenter.from_export(str(tmp_path / "export"))
    assert np.mean(served.predict(val_000) == _alone(loaded, config, val_000)) >= 0.999
    from ssgan_jax.core.errors import UserError

    with pytest.raises(UserError, match="exactly 40x56"):
        served.predict(val_000[:32])


def test_registry_names_what_is_wrong(my_nets, tmp_path):
    from ssgan_jax import checks
    from ssgan_jax.core.errors import ConfigError
    from ssgan_jax.models import build_generator, registry
    from ssgan_jax.training import state as state_lib

    config = tiny_config(tmp_path)
    for name, message in (
            ("unet", r"one of \['deeplabv3_resnet50', 'fcn8s_vgg16'\] or an importable "
                     r"'module:attribute'"),
            ("no_such_package.nets:UNet", "cannot import module 'no_such_package.nets'"),
            (f"{my_nets}:UNet2", "has no attribute 'UNet2'"),
            (f"{my_nets}:jnp", "names a module, not a flax.linen.Module class"),
    ):
        config.model.name = name
        with pytest.raises(ConfigError, match=message):
            checks.check(config)
    config.model.name = f"{my_nets}:UNet"
    config.model.kwargs = ml_collections.ConfigDict({"feature": 4})  # a typo: said
    with pytest.raises(ConfigError, match=r"\*\*config.model.kwargs=\{'feature': 4\}"):
        build_generator(config.model, 11)
    config.model.kwargs = ml_collections.ConfigDict()
    config.weights.generator = "/some/resnet50.safetensors"  # no preset maps torch onto it
    with pytest.raises(ConfigError, match="config.weights.generator must be ''"):
        checks.check(config)
    config.weights.generator = ""
    checks.check(config)

    # a module that returns logits at a quarter of the input's size: said at init
    config.model.name = f"{my_nets}:wrong_shape"
    nets = state_lib.build_networks(config, 11, 1)
    with pytest.raises(ConfigError, match=r"returned \(1, 8, 12, 11\) for images "
                                          r"\(1, 32, 48, 3\).*at the input's resolution"):
        state_lib.init_state(nets, *state_lib.run_keys(0), (1, 32, 48, 3), 11)

    # metrics: a name that does not import, or an object without the interface
    from ssgan_jax.inference import metric_registry

    config.model.name = "fcn8s_vgg16"
    config.eval.metrics = ("my_nets.share:Share",)
    with pytest.raises(ConfigError, match="module 'my_nets.share' has no attribute 'Share'"):
        checks.check(config)
    config.eval.metrics = ("my_nets.share:OnlyAdd",)  # a class, but not a metric
    with pytest.raises(ConfigError, match="has no state, load_state, summary, scalars"):
        metric_registry.build(config, 11)
    config.eval.metrics = ("my_nets.unet:UNet",)  # takes neither argument
    with pytest.raises(ConfigError, match=r"cannot be built as UNet\(num_classes=11, "
                                          r"ignore_label=255\)"):
        metric_registry.build(config, 11)
    config.eval.metrics = ("my_nets.share:ClassShare",)
    checks.check(config)
    assert [type(m).__name__ for m in metric_registry.build(config, 11)] == [
        "RegionMetrics", "ClassShare"]

    # the built-in generators are told their images' sizes; this one is not
    unet = build_generator(ml_collections.ConfigDict({**config.model.to_dict(),
                                                      "name": f"{my_nets}:UNet"}), 11)
    assert registry.own_canvas(unet)
    for name in registry.GENERATORS:
        config.model.name = name
        assert registry.takes_sizes(build_generator(config.model, 11))
