"""--mode=export's model.onnx: jax2onnx's conversion of the generator, checked
with onnxruntime against JAX, and the README's onnxruntime example run without JAX."""

from __future__ import annotations

import copy
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("jax2onnx", reason="the export extra: README, Export")
ort = pytest.importorskip("onnxruntime", reason="the export extra: README, Export")

REPO = pathlib.Path(__file__).resolve().parents[2]


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("#### onnxruntime example"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_onnx_export_equals_jax_and_serves_without_jax(trained_run, tmp_path):
    import jax

    from ssgan_jax.data.classes import CAMVID
    from ssgan_jax.inference.export import ONNX_FILE, run_export, serving_fn
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.tta import from_config

    config, workdir, _ = trained_run
    cfg = copy.deepcopy(config)
    cfg.eval.checkpoint = "4"
    cfg.export.output_dir = str(tmp_path / "export")
    cfg.export.size = (64, 64)
    cfg.export.formats = "onnx"
    meta = run_export(cfg, str(workdir))
    folder = tmp_path / "export"
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", ONNX_FILE]
    check = meta["checks"]["onnx"]
    assert check["argmax_agreement"] >= 0.9999 and check["max_abs_logit_diff"] < 1e-3, check
    assert meta["files"][ONNX_FILE].startswith("ONNX opset 23")
    assert check["converter"].startswith("jax2onnx 0.")

    # the file as anyone loads it: dynamic batch (3 here, 2 in the check), uint8 only
    session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "sizes"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    sizes = np.asarray([[64, 64], [40, 56], [17, 9]], np.int32)
    (got,) = session.run(None, {"images": images, "sizes": sizes})
    loaded = load_generator(cfg, str(workdir))
    serve = jax.jit(serving_fn(loaded.generator, loaded.variables, config.data.mean,
                               config.data.std, from_config(cfg)))
    want = np.asarray(serve(images, sizes))
    assert got.shape == want.shape == (3, 64, 64, len(CAMVID))
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-4)
    # an image given its size: its logits are its own, whatever fills the rest of the canvas
    other = images.copy()
    other[1, 40:], other[1, :, 56:] = 0, 255
    (moved,) = session.run(None, {"images": other, "sizes": sizes})
    np.testing.assert_allclose(moved[1, :40, :56], got[1, :40, :56], atol=1e-4)
    with pytest.raises(Exception, match="(?i)type|uint8"):  # float input: refused by the runtime
        session.run(None, {"images": images.astype(np.float32), "sizes": sizes})

    # README's example, with JAX and this package unimportable
    image = np.asarray(Image.open(pathlib.Path(config.data.manual_dir) / "val" / "val_000.png"))
    Image.fromarray(image).save(tmp_path / "street.png")
    code = _readme_example().replace('"runs/camvid_r50_gan/export/step_5000"',
                                     repr(str(folder))).replace('"street.png"',
                                                                repr(str(tmp_path / "street.png")))
    blocker = ("import sys\nfor n in ('jax', 'jaxlib', 'flax', 'ssgan_jax'):\n"
               "    sys.modules[n] = None\n")
    done = subprocess.run([sys.executable, "-c", blocker + code], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = eval(done.stdout.strip())  # noqa: S307 - the example prints a dict literal
    h, w = image.shape[:2]
    batch = np.full((1, 64, 64, 3), json.loads((folder / "export.json").read_text())[
        "input"]["padding_rgb"], np.uint8)
    batch[0, :h, :w] = image
    classes = np.asarray(serve(batch, np.asarray([[h, w]], np.int32)))[0, :h, :w].argmax(-1)
    want_counts = {CAMVID[c]: int((classes == c).sum()) for c in np.unique(classes)}
    assert sum(counts.values()) == h * w
    agree = sum(min(counts.get(k, 0), v) for k, v in want_counts.items()) / (h * w)
    assert agree >= 0.999, (counts, want_counts)


def test_onnx_format_errors(trained_run, tmp_path, monkeypatch):
    from ssgan_jax.core.errors import ConfigError
    from ssgan_jax.inference import export

    cfg = copy.deepcopy(trained_run[0])
    cfg.export.output_dir = str(tmp_path / "e")
    cfg.export.formats = "onnx,tflite"
    with pytest.raises(ConfigError, match="export.formats must be"):
        export.run_export(cfg, str(trained_run[1]))
    monkeypatch.setattr(export, "onnx_available", lambda: False)
    cfg.export.formats = "stablehlo,onnx"
    with pytest.raises(export.ExportError, match="pip install --no-deps jax2onnx"):
        export.run_export(cfg, str(trained_run[1]))
    assert export._formats(_auto(cfg)) == ("stablehlo",)  # auto without jax2onnx
    assert not (tmp_path / "e").exists()  # nothing written by a refused export


def _auto(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.export.formats = "auto"
    return cfg
