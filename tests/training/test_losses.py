"""Losses (METHOD.md section 5) against hand values, numpy and optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssgan_jax.data import balance
from ssgan_jax.training import losses


def test_cross_entropy_matches_optax_over_labelled_pixels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5, 7)).astype(np.float32) * 2
    labels = rng.integers(0, 7, size=(2, 4, 5))
    labels[1, :2] = 255
    valid = labels != 255
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(logits), jnp.asarray(np.where(valid, labels, 0))
    )
    expected = float(np.asarray(per_pixel)[valid].mean())
    got = float(losses.masked_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)))
    assert got == pytest.approx(expected, rel=1e-6)
    # normalizer: sum / given count (used for the global count over devices)
    total = float(np.asarray(per_pixel)[valid].sum())
    got = losses.masked_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), normalizer=100.0)
    assert float(got) == pytest.approx(total / 100.0, rel=1e-6)


def test_cross_entropy_hand_value():
    # uniform logits over 4 classes: -log(1/4) per pixel
    got = losses.masked_cross_entropy(jnp.zeros((1, 2, 2, 4)), jnp.array([[[0, 1], [2, 255]]]))
    assert float(got) == pytest.approx(np.log(4.0), rel=1e-6)


def test_all_ignore_gives_zero_and_finite_gradient():
    logits = jnp.ones((1, 3, 3, 5))
    labels = jnp.full((1, 3, 3), 255)
    assert float(losses.masked_cross_entropy(logits, labels)) == 0.0
    g = jax.grad(lambda x: losses.masked_cross_entropy(x, labels))(logits)
    assert np.all(np.asarray(g) == 0.0)


def test_sigmoid_bce_matches_optax_and_numpy():
    x = jnp.array([[-30.0, -2.0], [0.0, 3.0]]).reshape(1, 2, 2)
    for t in (0.0, 1.0):
        want = np.mean(np.asarray(optax.sigmoid_binary_cross_entropy(x, jnp.full(x.shape, t))))
        assert float(losses.sigmoid_bce(x, t)) == pytest.approx(want, rel=1e-6)
    d = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0])))
    want = np.mean(-np.log(d))  # t = 1
    assert float(losses.sigmoid_bce(jnp.array([-2.0, 0.0, 3.0]), 1.0)) == pytest.approx(want)


def test_adversarial_forms_hand_values():
    # one cell with d = sigmoid(0) = 0.5: bce(0, d) = bce(1, d) = log 2
    x = jnp.zeros((1, 1, 1))
    assert float(losses.generator_adversarial_loss(x, "minimax")) == pytest.approx(-np.log(2))
    assert float(losses.generator_adversarial_loss(x, "non_saturating")) == pytest.approx(
        np.log(2)
    )
    # d = sigmoid(2): minimax = log(1 - d) ; non-saturating = -log d
    x = jnp.full((2, 4, 4), 2.0)
    d = 1 / (1 + np.exp(-2.0))
    assert float(losses.generator_adversarial_loss(x, "minimax")) == pytest.approx(np.log(1 - d))
    assert float(losses.generator_adversarial_loss(x, "non_saturating")) == pytest.approx(
        -np.log(d)
    )
    with pytest.raises(ValueError, match="minimax"):
        losses.generator_adversarial_loss(x, "wasserstein")


def test_adversary_and_generator_loss():
    real = jnp.full((1, 4, 4), 1.0)
    fake = jnp.full((1, 4, 4), -1.0)
    d_real, d_fake = 1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0))
    want = -np.log(d_real) - np.log(1 - d_fake)
    assert float(losses.adversary_loss(real, fake)) == pytest.approx(want, rel=1e-6)
    # G's loss (Eq. 5) is the table of training/loss_terms.py: ce (here a given 0.5) + lam adv
    from ssgan_jax.core import config as config_lib
    from ssgan_jax.training import loss_terms

    config = config_lib.get_config()
    config.loss.lam = 0.01
    inputs = loss_terms.Inputs(
        logits=jnp.zeros((1, 4, 4, 2)), labels=jnp.zeros((1, 4, 4), jnp.int32),
        images=jnp.zeros((1, 4, 4, 3)), n=1, fake=fake, phase2_step=jnp.asarray(0),
        cross_entropy=lambda logits, labels: jnp.asarray(0.5), config=config,
        axis_name="batch")
    terms = loss_terms.active(loss_terms.table(config), config, True, False)
    loss_g, parts = loss_terms.generator_loss(terms, inputs)
    assert float(parts["adv"]) == pytest.approx(np.log(1 - d_fake), rel=1e-6)
    assert float(loss_g) == pytest.approx(0.5 + 0.01 * np.log(1 - d_fake), rel=1e-6)


def test_per_cell_judgements_give_per_cell_gradients():
    # A cell's gradient depends only on that cell (each is its own sigmoid).
    x = jnp.array([[[-3.0, 0.0], [1.0, 5.0]]])
    g = np.asarray(jax.grad(lambda z: losses.sigmoid_bce(z, 1.0))(x))
    want = (1 / (1 + np.exp(-np.asarray(x))) - 1) / x.size
    np.testing.assert_allclose(g, want, rtol=1e-5)


def test_shape_errors():
    with pytest.raises(ValueError, match="labels"):
        losses.masked_cross_entropy(jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 3), jnp.int32))


def test_class_weighted_cross_entropy_is_torchs_weighted_mean():
    """With class weights w: sum_i w[y_i] nll_i / sum_i w[y_i] over labelled pixels, as
    torch.nn.functional.cross_entropy(weight=w, ignore_index=255) reduces them."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=(2, 3, 4))
    labels[0, 0] = 255
    w = np.array([0.5, 2.0, 1.0, 0.0, 3.0], np.float32)
    valid = labels != 255
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    wy = np.where(valid, w[np.where(valid, labels, 0)], 0.0)
    want = (wy * nll).sum() / wy.sum()
    total, weight = losses.cross_entropy_sum(jnp.asarray(logits), jnp.asarray(labels),
                                             class_weights=jnp.asarray(w))
    assert float(total / weight) == pytest.approx(want, rel=1e-5)
    assert float(weight) == pytest.approx(wy.sum(), rel=1e-6)
    # hand value: uniform logits, labels (0, 1) with weights (1, 3): -log(1/5) either way
    total, weight = losses.cross_entropy_sum(jnp.zeros((1, 1, 2, 5)), jnp.array([[[0, 1]]]),
                                             class_weights=jnp.array([1.0, 3, 1, 1, 1]))
    assert float(weight) == 4.0 and float(total) == pytest.approx(4 * np.log(5.0), rel=1e-6)


def test_median_frequency_weights_hand_values():
    """SegNet's balancing (Eigen and Fergus 2015): freq_c = pixels of c / pixels of the images
    holding c; w_c = median(freq) / freq_c; a class never seen gets 0."""
    pixels = np.array([60, 30, 10, 0])
    image_pixels = np.array([100, 100, 50, 0])  # class 2 in one image of 50 pixels only
    w = balance.median_frequency_weights(pixels, image_pixels)
    freq = np.array([0.6, 0.3, 0.2])
    np.testing.assert_allclose(w, [0.3 / 0.6, 1.0, 0.3 / 0.2, 0.0], rtol=1e-6)
    assert np.median(freq) == 0.3
