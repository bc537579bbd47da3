"""IoU from the confusion matrix, against hand values and an independent numpy computation."""

import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.inference.metrics import confusion_matrix, format_table, summarize


def _numpy_confusion(preds, labels, num_classes, mask, ignore=255):
    keep = (labels != ignore) & mask
    return np.bincount(
        labels[keep] * num_classes + preds[keep], minlength=num_classes**2
    ).reshape(num_classes, num_classes)


def test_confusion_matches_bincount_with_ignore_and_mask():
    rng = np.random.default_rng(0)
    c = 5
    labels = rng.integers(0, c, size=(3, 17, 23))
    labels[rng.random(labels.shape) < 0.2] = 255
    preds = rng.integers(0, c, size=labels.shape)
    mask = rng.random(labels.shape) < 0.8
    got = np.asarray(
        confusion_matrix(jnp.asarray(preds), jnp.asarray(labels), c, jnp.asarray(mask)))
    want = _numpy_confusion(preds, labels, c, mask)
    np.testing.assert_array_equal(got, want)
    assert got.sum() == ((labels != 255) & mask).sum()


def test_summary_against_independent_iou_and_absent_class():
    rng = np.random.default_rng(1)
    c = 6
    labels = rng.integers(0, 4, size=(4000,))  # classes 4, 5 never in the ground truth
    labels[:300] = 255
    preds = np.where(rng.random(4000) < 0.7, labels, rng.integers(0, 5, size=4000))
    preds = np.where(labels == 255, rng.integers(0, 6, size=4000), preds)  # ignored anyway
    preds = np.where(preds == 255, 0, preds)  # class 5 predicted only on ignore pixels
    cm = np.asarray(confusion_matrix(jnp.asarray(preds), jnp.asarray(labels), c))
    s = summarize(cm, [f"c{i}" for i in range(c)])
    keep = labels != 255
    ious = []
    for k in range(c):
        inter = np.sum((preds[keep] == k) & (labels[keep] == k))
        union = np.sum((preds[keep] == k) | (labels[keep] == k))
        if union:
            ious.append(inter / union)
            assert s["per_class_iou"][f"c{k}"] == pytest.approx(inter / union)
        else:
            assert s["per_class_iou"][f"c{k}"] is None
    assert s["absent_classes"] == ["c5"]
    assert s["per_class_iou"]["c4"] == 0.0  # predicted but never true: IoU 0, counted
    assert s["miou"] == pytest.approx(np.mean(ious))
    assert s["pixel_accuracy"] == pytest.approx(np.mean(preds[keep] == labels[keep]))
    recalls = [np.mean(preds[keep][labels[keep] == k] == k) for k in range(4)]
    assert s["mean_accuracy"] == pytest.approx(np.mean(recalls))


def test_summary_hand_values():
    # gt rows, pred columns. class 0: tp 3, fn 1, fp 2 -> IoU 3 / 6;
    # class 1: tp 4, fn 2, fp 1 -> IoU 4 / 7; class 2 absent
    cm = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    s = summarize(cm, ["a", "b", "c"])
    assert s["per_class_iou"] == {"a": pytest.approx(0.5), "b": pytest.approx(4 / 7), "c": None}
    assert s["miou"] == pytest.approx((0.5 + 4 / 7) / 2)
    assert s["pixel_accuracy"] == pytest.approx(7 / 10)
    assert s["mean_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert "absent" in format_table(s) and "mean" in format_table(s)
