"""epsilon-rescaling (METHOD.md section 4) against hand-computed values and a plain loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.training.rescaling import epsilon_rescale


def loop_reference(u, labels, eps, ignore=255):
    """Eq. 1-2 written pixel by pixel in numpy, with the u[l] -> 1 limit taken explicitly."""
    v = u.astype(np.float64).copy()
    for idx in np.ndindex(labels.shape):
        lab = labels[idx]
        if lab == ignore:
            continue
        ui = u[idx].astype(np.float64)
        vl = max(eps, ui[lab])
        out = ui * ((1 - vl) / (1 - ui[lab]) if ui[lab] < 1 else 1.0)
        out[lab] = vl
        v[idx] = out
    return v


def test_hand_computed_pixel():
    # u = [0.5, 0.3, 0.2], true class 0, eps 0.9: v0 = 0.9; others share 0.1 in 3:2.
    u = jnp.array([0.5, 0.3, 0.2]).reshape(1, 1, 1, 3)
    v = epsilon_rescale(u, jnp.zeros((1, 1, 1), jnp.int32), eps=0.9)
    np.testing.assert_allclose(np.asarray(v).ravel(), [0.9, 0.06, 0.04], atol=1e-7)
    # true class 2 (u=0.2): v2 = 0.9, others 0.1 * [0.5, 0.3] / 0.8
    v = epsilon_rescale(u, jnp.full((1, 1, 1), 2), eps=0.9)
    np.testing.assert_allclose(np.asarray(v).ravel(), [0.0625, 0.0375, 0.9], atol=1e-7)


def test_confident_pixel_is_unchanged_and_limit_is_finite():
    # u[l] >= eps: v = u exactly, including u[l] == 1 (0/0 in Eq. 2) and u[l] = 1 - 1e-9.
    u = jnp.array([[0.95, 0.03, 0.02], [1.0, 0.0, 0.0], [1 - 1e-9, 1e-9, 0.0]], jnp.float32)
    u = u.reshape(1, 1, 3, 3)
    v = epsilon_rescale(u, jnp.zeros((1, 1, 3), jnp.int32), eps=0.9)
    assert np.all(np.isfinite(np.asarray(v)))
    np.testing.assert_array_equal(np.asarray(v), np.asarray(u))


def test_matches_loop_rows_sum_to_one_and_ignore_keeps_probs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 7, 6)) * 3
    u = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, 6, size=(2, 5, 7))
    labels[0, 0, :4] = 255
    v = np.asarray(epsilon_rescale(jnp.asarray(u, jnp.float32), jnp.asarray(labels), eps=0.7))
    ref = loop_reference(u.astype(np.float32), labels, 0.7)
    np.testing.assert_allclose(v, ref, atol=2e-6)
    np.testing.assert_allclose(v.sum(-1), 1.0, atol=2e-6)
    np.testing.assert_array_equal(v[0, 0, :4], u.astype(np.float32)[0, 0, :4])
    valid = labels != 255
    true_prob = np.take_along_axis(v, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    assert np.all(true_prob[valid] >= 0.7 - 1e-6)


def test_no_gradient_into_probs_and_works_under_jit():
    u = jax.nn.softmax(jax.random.normal(jax.random.key(1), (1, 3, 3, 4)), -1)
    labels = jnp.array([[[0, 1, 2], [3, 255, 0], [1, 1, 1]]])
    g = jax.grad(lambda p: jnp.sum(epsilon_rescale(p, labels) ** 2))(u)
    np.testing.assert_array_equal(np.asarray(g), 0.0)
    np.testing.assert_allclose(
        jax.jit(epsilon_rescale)(u, labels), epsilon_rescale(u, labels), atol=1e-7
    )


@pytest.mark.parametrize(
    "probs_shape,labels_shape,eps,labels_value,match",
    [
        ((2, 4, 4), (2, 4), 0.9, 0, r"\[N, H, W, C\]"),
        ((2, 4, 4, 3), (2, 4, 5), 0.9, 0, "labels must be"),
        ((1, 2, 2, 3), (1, 2, 2), 1.0, 0, "eps must be"),
        ((1, 2, 2, 3), (1, 2, 2), 0.9, 7, "outside the classes"),
    ],
)
def test_bad_input_is_named(probs_shape, labels_shape, eps, labels_value, match):
    with pytest.raises(ValueError, match=match):
        epsilon_rescale(
            jnp.full(probs_shape, 1 / 3), jnp.full(labels_shape, labels_value), eps=eps
        )
