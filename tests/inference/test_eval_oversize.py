"""--mode=eval on images larger than data.eval_size: they go, one by one,
through sliding windows of eval_size instead of being refused; where that is equivalent to a
whole-image pass (a pointwise network) the numbers are the same."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest

from ssgan_jax.core import config as default_config
from ssgan_jax.core import parallel
from ssgan_jax.data import open_prepared
from ssgan_jax.data.classes import CAMVID
from ssgan_jax.data.common import DataError
from ssgan_jax.inference import tta
from ssgan_jax.inference.evaluator import evaluate_split, make_eval_step, oversize_step

from ..data.conftest import write_camvid


class Pointwise(nn.Module):
    """Per-pixel logits from the pixel alone: windows and whole images agree."""

    num_classes: int

    @nn.compact
    def __call__(self, x, train=False, sizes=None):
        del sizes  # per pixel: no padding can reach another pixel
        return nn.Dense(self.num_classes)(nn.tanh(nn.Dense(16)(x)))


def _config(tmp_path, eval_size):
    config = default_config.get_config()
    config.data.name = "camvid"
    config.data.manual_dir = write_camvid(str(tmp_path / "CamVid"),
                                          sizes={"train": 1, "val": 4, "test": 1})
    config.data.data_dir = str(tmp_path / "tfds")
    config.data.eval_size = eval_size
    config.eval_batch_size = 2
    config.eval.region_metrics = True
    return config


def _evaluate(config, *args, **kw):
    return evaluate_split(config, *args, dataset=open_prepared(config.data), **kw)


def test_oversize_images_are_evaluated_through_windows(tmp_path):
    c = len(CAMVID)
    net = Pointwise(c)
    variables = net.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))
    p_eval = parallel.pmap_eval(make_eval_step(net, c))
    placed = parallel.on_devices(variables)

    # val images are 40x56, 48x56, 56x56, 64x56: all fit 64x64, none 32x48
    whole = _evaluate(_config(tmp_path / "a", (64, 64)), p_eval, placed, "val", c, CAMVID)
    small = _config(tmp_path / "b", (32, 48))
    with pytest.raises(DataError, match=r"larger than data.eval_size=\(32, 48\)"):
        _evaluate(small, p_eval, placed, "val", c, CAMVID)  # training's validation
    big = oversize_step(net, c, 255, tta.Settings(), (32, 48))
    windows = _evaluate(small, p_eval, placed, "val", c, CAMVID, big_step=big)
    assert windows["num_images"] == whole["num_images"] == 4
    np.testing.assert_array_equal(windows["confusion"], whole["confusion"])
    assert windows["miou"] == whole["miou"] and windows["boundary_f1"] == whole["boundary_f1"]

    # a mixed split: two images fit 48x56, two go through windows; still the same numbers
    mixed = _evaluate(_config(tmp_path / "c", (48, 56)), p_eval, placed, "val", c,
                      CAMVID, big_step=oversize_step(net, c, 255, tta.Settings(), (48, 56)))
    np.testing.assert_array_equal(mixed["confusion"], whole["confusion"])
    assert mixed["num_images"] == 4
