"""Latency of the exported generator: onnxruntime (CPU) against JAX, one image per call.

    python -m launch.bench.export --config=configs/demo.py [--size=H,W] [--iterations=20]
    python -m launch.bench.export --config=configs/camvid.py:deeplabv3_resnet50_gan --size=512,512

The generator of the config (random initial weights: latency does not depend on them; or the
checkpoint ``--workdir`` names, ``eval.checkpoint``) with the normalisation and inference
settings inside, as ``--mode=export`` writes it: ``jax.jit`` of ``export.serving_fn`` against
jax2onnx's ONNX model of the same function (``export.onnx_model``, the networks in the forms
``--mode=export`` converts) in an onnxruntime CPU session. Prints one JSON object: median /
min milliseconds of each, their ratio, the conversion seconds, and max abs logit difference
and argmax agreement on the timed images. Needs the export extra (README, "Export").
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np


def _median_ms(fn, iterations: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        ms.append(1000 * (time.perf_counter() - start))
    return float(np.median(ms)), float(min(ms))


def measure(config, size: tuple[int, int], workdir: str, iterations: int) -> dict:
    import jax
    import jax.numpy as jnp
    import onnxruntime

    from ssgan_jax.data.classes import class_names
    from ssgan_jax.inference import export, tta
    from ssgan_jax.models import build_generator

    num_classes = len(class_names(config.data.name))
    settings = tta.from_config(config)
    if workdir:
        from ssgan_jax.inference.generator import load_generator

        loaded = load_generator(config, workdir)
        generator, variables, source = loaded.generator, loaded.variables, loaded.path
    else:
        generator = build_generator(config.model, num_classes)
        variables = jax.jit(lambda: generator.init(
            jax.random.key(0), jnp.zeros((1, *size, 3)), train=False))()
        source = "random initial weights"
    serve = jax.jit(export.serving_fn(generator, variables, config.data.mean, config.data.std,
                                      settings))
    start = time.perf_counter()
    model = export.onnx_model(export.onnx_serving_fn(config, variables, num_classes, settings),
                              size)
    convert_s = time.perf_counter() - start
    session = export.onnx_session(model.SerializeToString())
    image = np.random.default_rng(0).integers(0, 256, (1, *size, 3)).astype(np.uint8)

    sizes = np.asarray([size], np.int32)  # the image fills the canvas
    feed = {"images": image, "sizes": sizes}
    jax_ms, jax_min = _median_ms(lambda: jax.block_until_ready(serve(image, sizes)),
                                 iterations)
    ort_ms, ort_min = _median_ms(lambda: session.run(None, feed), iterations)
    want = np.asarray(serve(image, sizes))
    (got,) = session.run(None, feed)
    return {
        "variant": config.variant, "size": list(size), "weights": source,
        "model": config.model.name, "width": config.model.get("width", None),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "jax": jax.__version__, "backend": jax.default_backend(),
        "onnxruntime": onnxruntime.__version__,
        "jax_ms": {"median": jax_ms, "min": jax_min},
        "onnxruntime_cpu_ms": {"median": ort_ms, "min": ort_min},
        "onnxruntime_over_jax": ort_ms / jax_ms, "convert_s": convert_s,
        "max_abs_logit_diff": float(np.abs(got - want).max()),
        "argmax_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1))),
    }


def main() -> None:
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "configs/X.py[:variant]")
    flags.DEFINE_string("size", "", "H,W (default: data.eval_size)")
    flags.DEFINE_string("workdir", "", "a run: its eval.checkpoint's weights")
    flags.DEFINE_integer("iterations", 20, "timed calls of each")

    def run(_):
        f = flags.FLAGS
        if f.config is None:
            raise app.UsageError("--config is required, e.g. --config=configs/demo.py")
        size = (tuple(int(v) for v in f.size.split(",")) if f.size
                else tuple(f.config.data.eval_size))
        print(json.dumps(measure(f.config, size, f.workdir, f.iterations), indent=1))

    app.run(run)


if __name__ == "__main__":
    main()
