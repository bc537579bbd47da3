"""The pmapped evaluation (ssgan_jax/evaluate.py) against an independent numpy computation:
several batches over 2 devices, ignore pixels, padding, filler examples, an absent class."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax import steps
from ssgan_jax.evaluate import evaluate, make_eval_step
from ssgan_jax.inference import Settings

C = 5


class _ChannelZeroIsTheClass:
    """A 'generator' whose prediction is the integer stored in the image's channel 0."""

    def apply(self, variables, images, train=False):
        assert not train
        return jax.nn.one_hot(images[..., 0].astype(jnp.int32), C) * variables["scale"]


def _batches(rng, num, devices=2, per_device=3, h=6, w=7):
    out = []
    for _ in range(num):
        preds = rng.integers(0, C - 1, size=(devices, per_device, h, w))  # class 4 never
        labels = rng.integers(0, C - 1, size=(devices, per_device, h, w))
        labels[rng.random(labels.shape) < 0.2] = 255  # ignore
        mask = rng.random(labels.shape) > 0.1  # padding
        valid = rng.random((devices, per_device)) > 0.2  # filler examples
        image = np.zeros((devices, per_device, h, w, 3), np.float32)
        image[..., 0] = preds
        out.append({"image": image, "label": labels.astype(np.int32), "mask": mask,
                    "valid": valid})
    return out


def _numpy_iou(batches):
    cm = np.zeros((C, C), np.int64)
    for b in batches:
        keep = b["mask"] & b["valid"][..., None, None] & (b["label"] != 255)
        gt, pr = b["label"][keep], b["image"][..., 0][keep].astype(np.int64)
        cm += np.bincount(gt * C + pr, minlength=C * C).reshape(C, C)
    ious = {}
    for c in range(C):
        union = cm[c].sum() + cm[:, c].sum() - cm[c, c]
        ious[str(c)] = None if union == 0 else cm[c, c] / union
    present = [v for v in ious.values() if v is not None]
    return cm, ious, sum(present) / len(present)


@pytest.mark.parametrize("settings", [Settings(), Settings(flip=True)])
def test_evaluate_matches_numpy(settings):
    rng = np.random.default_rng(0)
    batches = _batches(rng, 4)
    p_eval = steps.pmap_eval(make_eval_step(_ChannelZeroIsTheClass(), C, 255, settings))
    variables = steps.on_devices({"scale": jnp.float32(1.0)})
    got = evaluate(p_eval, variables, iter(batches), C, [str(c) for c in range(C)])
    cm, ious, miou = _numpy_iou(batches)
    np.testing.assert_array_equal(np.array(got["confusion"]), cm)
    assert got["per_class_iou"]["4"] is None and got["absent_classes"] == ["4"]
    for c in range(C - 1):
        assert got["per_class_iou"][str(c)] == pytest.approx(ious[str(c)], abs=1e-12)
    assert got["miou"] == pytest.approx(miou, abs=1e-12)
    assert got["num_images"] == sum(int(b["valid"].sum()) for b in batches)
    assert got["num_pixels"] == cm.sum()
