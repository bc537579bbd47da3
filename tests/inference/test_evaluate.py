"""The pmapped evaluation (ssgan_jax/evaluate.py) against an independent numpy computation:
several batches over 2 devices, ignore pixels, padding, filler examples, an absent class."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.core import parallel
from ssgan_jax.inference.evaluator import evaluate, make_eval_step
from ssgan_jax.inference.tta import Settings

C = 5


class _ChannelZeroIsTheClass:
    """A 'generator' whose prediction is the integer stored in the image's channel 0."""

    def apply(self, variables, images, train=False, sizes=None):
        assert not train and sizes is not None  # evaluation tells G each image's size
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
    p_eval = parallel.pmap_eval(make_eval_step(_ChannelZeroIsTheClass(), C, 255, settings))
    variables = parallel.on_devices({"scale": jnp.float32(1.0)})
    got = evaluate(p_eval, variables, iter(batches), C, [str(c) for c in range(C)])
    cm, ious, miou = _numpy_iou(batches)
    np.testing.assert_array_equal(np.array(got["confusion"]), cm)
    assert got["per_class_iou"]["4"] is None and got["absent_classes"] == ["4"]
    for c in range(C - 1):
        assert got["per_class_iou"][str(c)] == pytest.approx(ious[str(c)], abs=1e-12)
    assert got["miou"] == pytest.approx(miou, abs=1e-12)
    assert got["num_images"] == sum(int(b["valid"].sum()) for b in batches)
    assert got["num_pixels"] == cm.sum()


def test_region_metrics_see_each_image_cropped_to_its_size():
    """evaluate(host_metrics=[...]) == RegionMetrics over each real example cropped to the top-left
    h x w its mask marks (padding and filler examples excluded); examples are those crops."""
    from ssgan_jax.inference.region_metrics import RegionMetrics

    rng = np.random.default_rng(3)
    batches = _batches(rng, 3, h=12, w=14)
    crops = []
    for b in batches:
        b["mask"][:] = False
        for d in range(2):
            for i in range(3):
                h, w = rng.integers(5, 13), rng.integers(5, 15)
                b["mask"][d, i, :h, :w] = True
                b["label"][d, i][~b["mask"][d, i]] = 255
                if b["valid"][d, i]:
                    crops.append((b["image"][d, i, :h, :w, 0].astype(np.int64),
                                  b["label"][d, i, :h, :w]))
    want = RegionMetrics(C, tolerance=1.0, min_region=3)
    for pred, label in crops:
        want.add(pred, label)
    p_eval = parallel.pmap_eval(make_eval_step(_ChannelZeroIsTheClass(), C, 255))
    got = evaluate(p_eval, parallel.on_devices({"scale": jnp.float32(1.0)}), iter(batches), C,
                   None, [RegionMetrics(C, tolerance=1.0, min_region=3)], keep_examples=2)
    assert got["boundary_f1"] == want.summary()["boundary_f1"]
    assert got["fragmentation"] == want.summary()["fragmentation"]
    assert got["speckle"] == want.summary()["speckle"] and got["speckle"] is not None
    assert len(got["examples"]) == 2
    for (image, label, pred), (want_pred, want_label) in zip(got["examples"], crops[:2],
                                                             strict=True):
        np.testing.assert_array_equal(pred, want_pred)
        np.testing.assert_array_equal(label, want_label)
        assert image.shape == (*want_pred.shape, 3)
