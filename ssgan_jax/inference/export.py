"""``--mode=export``: the generator of one checkpoint as a serialized StableHLO program and an
ONNX model.

Writes, into ``config.export.output_dir`` (default ``<workdir>/export/step_<N>/``):

* ``model.stablehlo``: ``jax.export`` of ``serve(images, sizes) -> logits``, the generator
  alone (SS-GAN's adversary costs nothing at inference), its weights inside. Inputs: uint8 RGB
  images ``[N, H, W, 3]`` (NHWC), N symbolic (any batch), H x W = ``config.export.size``
  (default ``data.eval_size``; the networks' exact padding pruning needs static sizes), and
  ``sizes`` int32 ``[N, 2]``, each image's own (height, width): smaller images are padded at
  the bottom/right, as evaluation pads them, the model computes each as alone at its own size
  (``models.canvas``; the padding's content does not matter), and the outputs are cropped
  back. The
  normalisation (``data.mean``/``data.std``) and the run's inference settings (``config.eval``:
  whole or sliding, scales, flip) are inside. Output: float32 logits ``[N, H, W, C]``.
  Lowered for ``config.export.platforms`` (CPU and CUDA by default); reload it with
  ``jax.export.deserialize`` or ``ssgan_jax.Segmenter.from_export``.
* ``export.json``: what a serving stack needs to know: class names, palette, input layout,
  dtype and size, the padding value, the normalisation, the output's meaning, the inference
  settings, and where it came from (checkpoint, step, run, config, package and JAX versions);
  and a check: the reloaded program against the JAX forward pass on random images.

* ``model.onnx`` (``config.export.formats``; by default where jax2onnx and onnxruntime are
  installed): the same function through jax2onnx, the maintained JAX-to-ONNX converter: input
  ``images`` uint8 ``[N, H, W, 3]`` and ``sizes`` int32 ``[N, 2]`` with N dynamic, output
  ``logits`` float32 ``[N, H, W, C]``.
  It is traced with this package's BatchNorm and XLA-form convolutions (``model.bn_vjp="on"``,
  ``conv_rewrites="off"``: same variables, same numbers), because jax2onnx 0.17's handler of
  flax's BatchNorm leaves its output channels-first before a residual add. Checked with
  onnxruntime on the CPU against the JAX logits (max abs difference, argmax agreement, in
  export.json). jax2onnx pins orbax-checkpoint < 0.11.37 (this package needs >= 0.12.8) though
  it never imports it, so it is installed without its dependencies: ``pip install -e
  ".[export]" && pip install --no-deps jax2onnx==0.17.1`` (``ONNX_INSTALL``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssgan_jax.core.errors import ConfigError, UserError
from ssgan_jax.data import images as image_prep
from ssgan_jax.inference import tta

MODEL_FILE = "model.stablehlo"
ONNX_FILE = "model.onnx"
META_FILE = "export.json"
FORMATS = ("stablehlo", "onnx")
ONNX_INSTALL = 'pip install -e ".[export]" && pip install --no-deps jax2onnx==0.17.1'
ONNX_OPSET = 23
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


class ExportError(UserError, RuntimeError):
    """An export that cannot be written or read as asked."""


def serving_fn(generator, variables, mean, std, settings: tta.Settings):
    """``serve(images uint8 [N, H, W, 3], sizes int32 [N, 2]) -> logits float32
    [N, H, W, C]`` (``sizes``: each image's own height and width on the canvas)."""
    mean, std = (jnp.asarray(v) for v in image_prep.scale(mean, std))

    def serve(images, sizes):
        if images.dtype != jnp.uint8:
            raise ExportError(f"the exported model takes uint8 RGB images; got {images.dtype}")
        x = (images.astype(jnp.float32) - mean) / std
        logits = tta.predict_logits(tta.bind(generator, variables), x, settings,
                                    sizes.astype(jnp.int32))
        return logits.astype(jnp.float32)

    return serve


def _size(config) -> tuple[int, int]:
    size = tuple(int(v) for v in config.export.size)
    if size == (0, 0):
        size = tuple(int(v) for v in config.data.eval_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"config.export.size must be (height, width) >= 1, or (0, 0) for "
                          f"data.eval_size; got {tuple(config.export.size)}")
    return size


def _platforms(config) -> tuple[str, ...]:
    platforms = tuple(config.export.platforms)
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise ConfigError(f"config.export.platforms must name some of {PLATFORMS}; got "
                          f"{platforms}")
    return platforms


FILE_MEANINGS = {
    MODEL_FILE: "jax.export serialized StableHLO (jax.export.deserialize; "
                "ssgan_jax.Segmenter.from_export)",
    ONNX_FILE: f"ONNX opset {ONNX_OPSET}: inputs \"images\" and \"sizes\", output "
               "\"logits\", batch dynamic (onnxruntime.InferenceSession)",
}


def onnx_available() -> bool:
    """Whether jax2onnx, onnx and onnxruntime import."""
    try:
        import jax2onnx  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _formats(config) -> tuple[str, ...]:
    value = str(config.export.formats).strip()
    if value == "auto":
        return FORMATS if onnx_available() else ("stablehlo",)
    formats = tuple(f.strip() for f in value.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(f"config.export.formats must be \"auto\" or a comma list of "
                          f"{FORMATS}; got {value!r}")
    if "onnx" in formats and not onnx_available():
        raise ExportError(f"ONNX export needs jax2onnx, onnx and onnxruntime: {ONNX_INSTALL}; "
                          "or --config.export.formats=stablehlo")
    return formats


def onnx_model(serve, size: tuple[int, int]):
    """``serve`` (uint8 images, int32 sizes -> logits) as an ONNX ModelProto, batch
    dynamic."""
    import jax2onnx

    return jax2onnx.to_onnx(serve, inputs=input_specs(size), model_name="ssgan_jax_generator",
                            opset=ONNX_OPSET, input_names=["images", "sizes"],
                            output_names=["logits"])


def input_specs(size: tuple[int, int]) -> list[jax.ShapeDtypeStruct]:
    """The exported programs' inputs: images uint8 [N, H, W, 3], sizes int32 [N, 2]."""
    (batch,) = jax.export.symbolic_shape("N")
    return [jax.ShapeDtypeStruct((batch, *size, 3), jnp.uint8),
            jax.ShapeDtypeStruct((batch, 2), jnp.int32)]


def onnx_session(model_bytes: bytes):
    """An onnxruntime CPU session of a serialized ONNX model."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model_bytes, options,
                                        providers=["CPUExecutionProvider"])


def onnx_serving_fn(config, variables, num_classes: int, settings: tta.Settings):
    """``serving_fn`` of G's ``variables`` with the networks in the forms jax2onnx converts
    (see the module's doc): what ``onnx_model`` takes."""
    from ssgan_jax.models import build_generator

    model = ml_collections.ConfigDict(config.model.to_dict())
    model.bn_vjp, model.conv_rewrites = "on", "off"
    generator = build_generator(model, num_classes)
    return serving_fn(generator, variables, config.data.mean, config.data.std, settings)


def _compare(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    return {"images": int(want.shape[0]), "max_abs_logit_diff": float(np.abs(got - want).max()),
            "argmax_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1)))}


def _check_output_dir(out_dir: str, run: str) -> None:
    """Refuse a folder that holds another run's export, or files of the names it writes
    that no export of this run wrote (never overwrite them)."""
    path = os.path.join(out_dir, META_FILE)
    if not os.path.exists(path):
        theirs = [n for n in (MODEL_FILE, ONNX_FILE) if os.path.exists(os.path.join(out_dir, n))]
        if theirs:
            raise ExportError(f"{out_dir} holds {', '.join(theirs)} but no {META_FILE}: not an "
                              "export of this run, so it is left as it is; give another "
                              "--config.export.output_dir")
        return
    try:
        with open(path, encoding="utf-8") as f:
            other = json.load(f)["source"]["run"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExportError(f"{out_dir} holds an unreadable {META_FILE} ({e}); give another "
                          "--config.export.output_dir or remove that folder") from e
    if os.path.abspath(other) != os.path.abspath(run):
        raise ExportError(f"{out_dir} holds the export of another run ({other}); give another "
                          "--config.export.output_dir, or export into this run's own folder")


def run_export(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Export G of ``config.eval.checkpoint``; returns (and writes) export.json's content."""
    from ssgan_jax import __version__
    from ssgan_jax.core.checkpoints import config_json
    from ssgan_jax.data import builder_class
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.models import registry

    builder = builder_class(config.data)
    names = list(builder.CLASS_NAMES)
    platforms, formats = _platforms(config), _formats(config)
    settings = tta.from_config(config)
    loaded = load_generator(config, workdir)  # (no checkpoint: said before any data is read)
    if config.data.eval_size == "auto":  # a run without its config: the prepared dataset's
        from ssgan_jax.data import open_prepared, pipeline

        pipeline.resolve_eval_size(config.data, open_prepared(config.data))
    size = _size(config)
    run = os.path.abspath(workdir)
    out_dir = os.path.abspath(config.export.output_dir or os.path.join(
        run, "export", f"step_{loaded.step}"))
    _check_output_dir(out_dir, run)
    serve = jax.jit(serving_fn(loaded.generator, loaded.variables, config.data.mean,
                               config.data.std, settings))
    # the checks: each file as a user loads it, against the JAX forward pass
    images = np.random.default_rng(0).integers(0, 256, (2, *size, 3)).astype(np.uint8)
    sizes = np.asarray([size, [max(1, size[0] - 7), max(1, size[1] // 2)]], np.int32)
    want = np.asarray(serve(images, sizes))
    files: dict[str, bytes] = {}
    checks: dict[str, dict] = {}
    if "stablehlo" in formats:
        files[MODEL_FILE] = jax.export.export(serve, platforms=platforms)(
            *input_specs(size)).serialize()
        got = np.asarray(jax.export.deserialize(files[MODEL_FILE]).call(images, sizes))
        checks["stablehlo"] = _compare(got, want)
    if "onnx" in formats:
        from importlib.metadata import version

        files[ONNX_FILE] = onnx_model(onnx_serving_fn(config, loaded.variables, len(names),
                                                      settings), size).SerializeToString()
        (got,) = onnx_session(files[ONNX_FILE]).run(None, {"images": images, "sizes": sizes})
        checks["onnx"] = {**_compare(np.asarray(got), want), "runtime": "onnxruntime CPU",
                          "converter": f"jax2onnx {version('jax2onnx')}",
                          "opset": ONNX_OPSET}
    check = checks.get("stablehlo") or checks["onnx"]  # the first file's, at the top level
    own = registry.own_canvas(loaded.generator)  # not told sizes: images must fill the canvas
    meta = {
        "format": "jax.export serialized StableHLO (jax.export.deserialize)"
                  if MODEL_FILE in files else "ONNX",
        "model_file": MODEL_FILE if MODEL_FILE in files else ONNX_FILE,
        "files": {name: FILE_MEANINGS[name] for name in files},
        "platforms": list(platforms),
        "input": {"name": "images", "shape": ["N", *size, 3], "dtype": "uint8",
                  "layout": "NHWC, RGB, 0..255",
                  "smaller_images": "not taken: this generator is not told its images' "
                                    "sizes, so each image must be exactly this size (export "
                                    "again with --config.export.size for another)" if own else
                                    "pad at the bottom/right (any colour; padding_rgb as "
                                    "evaluation), give their sizes, crop outputs",
                  "padding_rgb": image_prep.padding_colour(config.data.mean)},
        "sizes": {"name": "sizes", "shape": ["N", 2], "dtype": "int32",
                  "meaning": "unused by this generator (give the canvas size)" if own else
                             "each image's own (height, width) at the top-left of its canvas; "
                             "the logits are the image's alone, zero outside it"},
        "own_canvas": own,
        "normalization": {"mean": list(config.data.mean), "std": list(config.data.std),
                          "formula": "(image / 255 - mean) / std, inside the model"},
        "output": {"shape": ["N", *size, len(names)], "dtype": "float32",
                   "meaning": "class logits per pixel (softmax for probabilities, argmax for "
                              "the class map)"},
        "class_names": names,
        "palette": [list(c) for c in builder.PALETTE],
        "inference": settings.as_dict(),
        "source": {"run": run, "checkpoint": loaded.path, "step": loaded.step,
                   "config": config_json(config), "ssgan_jax": __version__,
                   "jax": jax.__version__},
        "check": check,
        "checks": checks,
    }
    os.makedirs(out_dir, exist_ok=True)
    for name, data, mode in (*((n, b, "wb") for n, b in files.items()),
                             (META_FILE, json.dumps(meta, indent=1), "w")):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, mode) as f:
            f.write(data)
        os.replace(tmp, os.path.join(out_dir, name))
    if "onnx" not in formats:
        print(f"export: no model.onnx (jax2onnx/onnxruntime not installed: {ONNX_INSTALL})",
              flush=True)
    print(json.dumps({"step": loaded.step, "output_dir": out_dir, "size": list(size),
                      "platforms": list(platforms), "files": sorted(files), **check,
                      "checks": checks}), flush=True)
    return meta


def load_export(path: str):
    """(``jax.export.Exported``, export.json) of an export folder; ExportError if either file
    is missing or unreadable."""
    meta_path, model_path = (os.path.join(path, n) for n in (META_FILE, MODEL_FILE))
    for p in (meta_path, model_path):
        if not os.path.exists(p):
            raise ExportError(f"{p} does not exist: give the folder --mode=export wrote "
                              "(<workdir>/export/step_<N>/)")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        with open(model_path, "rb") as f:
            exported = jax.export.deserialize(bytearray(f.read()))
    except Exception as e:  # noqa: BLE001 - any corruption reads as one line
        raise ExportError(f"cannot read the export in {path} ({type(e).__name__}: {e}); "
                          "export it again with --mode=export") from e
    return exported, meta
