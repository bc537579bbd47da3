"""Cost of the region metrics (boundary F1, fragmentation, speckle) in evaluation: one split
evaluated with ``eval.region_metrics`` off and on, alternating, in one process (compiled
once), wall seconds per pass.

    python -m launch.bench.eval_regions --config=configs/camvid.py:deeplabv3_resnet50_gan,cpu \
        --workdir=runs/camvid --rounds=3 [--config.x=y ...]

The checkpoint is ``config.eval.checkpoint`` of the workdir; the split ``config.eval.split``.
Prints one JSON object: seconds per pass for each setting, medians and the ratio on / off.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from ssgan_jax.core import parallel

config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:args]).")
flags.DEFINE_string("workdir", None, "Run whose checkpoint to evaluate.")
flags.DEFINE_integer("rounds", 3, "Off/on pairs.")


def main(_):
    import jax

    from ssgan_jax.data import classes, open_prepared
    from ssgan_jax.inference.evaluator import evaluate_split, make_eval_step
    from ssgan_jax.inference.generator import load_generator
    from ssgan_jax.inference.tta import from_config

    config = flags.FLAGS.config
    if not config.data.data_dir:
        config.data.data_dir = f"{flags.FLAGS.workdir}/tensorflow_datasets"
    names = classes.class_names(config.data.name)
    loaded = load_generator(config, flags.FLAGS.workdir)
    p_eval = parallel.pmap_eval(make_eval_step(loaded.generator, len(names),
                                            config.loss.ignore_label, from_config(config)))
    variables = parallel.on_devices(loaded.variables)
    split = config.eval.split or config.data.val_split
    dataset = open_prepared(config.data)
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    summary = None
    evaluate_split(config, p_eval, variables, split, len(names), names,
                   dataset=dataset)  # compile, warm up
    for _ in range(flags.FLAGS.rounds):
        for setting in ("off", "on"):
            config.eval.region_metrics = setting == "on"
            start = time.perf_counter()
            out = evaluate_split(config, p_eval, variables, split, len(names), names,
                                 dataset=dataset)
            seconds[setting].append(time.perf_counter() - start)
            summary = out if setting == "on" else summary
    result = {
        "device": f"{jax.local_device_count()} x {jax.devices()[0].device_kind}",
        "split": split, "images": summary["num_images"], "step": loaded.step,
        "seconds_off": seconds["off"], "seconds_on": seconds["on"],
        "median_off": statistics.median(seconds["off"]),
        "median_on": statistics.median(seconds["on"]),
        "on_over_off": statistics.median(seconds["on"]) / statistics.median(seconds["off"]),
        "miou": summary["miou"], "boundary_f1": summary["boundary_f1"]["mean"],
        "fragmentation": summary["fragmentation"]["mean"], "speckle": summary["speckle"],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main, argv=sys.argv)
