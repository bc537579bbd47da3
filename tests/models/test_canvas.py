"""Images on a padded canvas (``models.canvas``): each image's logits are those of the image
alone at its own size, whatever the canvas holds around it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.models import canvas
from ssgan_jax.models.deeplab import DeepLabV3
from ssgan_jax.models.fcn import FCN8s
from ssgan_jax.models.layers import bilinear_matrix


@pytest.mark.parametrize("n_in,n_out", [(3, 7), (12, 90), (5, 5), (9, 4), (90, 37)])
def test_resize_matrix_is_bilinear_up_and_antialiased_down(n_in, n_out):
    m = np.asarray(canvas.resize_matrix(jnp.asarray([n_in]), jnp.asarray([n_out]), n_in + 3,
                                        n_out + 2))[0]
    assert np.all(m[n_out:] == 0) and np.all(m[:, n_in:] == 0)
    if n_out >= n_in:
        np.testing.assert_allclose(m[:n_out, :n_in], bilinear_matrix(n_in, n_out), atol=1e-6)
    else:  # jax.image.resize (antialiased) of the unit vectors
        eye = jnp.eye(n_in, dtype=jnp.float32)  # column j: the resize of unit vector j
        ref = np.asarray(jax.vmap(lambda v: jax.image.resize(v, (n_out,), "bilinear"))(eye)).T
        np.testing.assert_allclose(m[:n_out, :n_in], ref, atol=5e-6)  # float32 positions


def test_resize_matrix_hand_values():
    # 2 -> 4 upsampling: outputs at x = -0.25, 0.25, 0.75, 1.25 of the 2 inputs (edges clamp)
    m = np.asarray(canvas.resize_matrix(jnp.asarray([2]), jnp.asarray([4]), 2, 4))[0]
    np.testing.assert_allclose(m, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]], atol=1e-7)


def test_mean_flip_and_sizes_of_masks():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    sizes = jnp.asarray([[3, 4], [5, 2]], jnp.int32)
    means = np.asarray(canvas.mean(x, sizes))
    np.testing.assert_allclose(means[0, 0, 0], np.asarray(x)[0, :3, :4].mean((0, 1)), rtol=1e-6)
    np.testing.assert_allclose(means[1, 0, 0], np.asarray(x)[1, :5, :2].mean((0, 1)), rtol=1e-6)
    flipped = np.asarray(canvas.flip(x, sizes))
    np.testing.assert_array_equal(flipped[0, :, :4], np.asarray(x)[0, :, 3::-1])
    np.testing.assert_array_equal(flipped[0, :, 4:], np.asarray(x)[0, :, 4:])
    np.testing.assert_array_equal(flipped[1, :, :2], np.asarray(x)[1, :, 1::-1])
    valid = np.asarray(canvas.inside(sizes, 5, 6))[..., 0]
    assert valid.sum() == 3 * 4 + 5 * 2
    np.testing.assert_array_equal(np.asarray(canvas.from_mask(jnp.asarray(valid))), sizes)
    # torch's output-size rule: 7x7 stride 2 pad 3 on 37 -> 19; 3x3 stride 2 pad 1 on 19 -> 10
    s = canvas.conv_sizes(jnp.asarray([[37, 45]]), 7, stride=2)
    np.testing.assert_array_equal(np.asarray(s), [[19, 23]])
    np.testing.assert_array_equal(np.asarray(canvas.conv_sizes(s, 3, 2, padding=1)), [[10, 12]])


def _perturbed(batch_stats, seed=1):
    """Random running statistics, so that the padding's features are far from zero."""
    rng = np.random.default_rng(seed)

    def move(path, v):
        noise = rng.normal(size=v.shape).astype(np.float32)
        return v + 0.5 * noise if path[-1].key == "mean" else v * (0.5 + np.abs(noise))

    return jax.tree_util.tree_map_with_path(move, batch_stats)


@pytest.mark.parametrize("net", [DeepLabV3(num_classes=4, width=16, output_stride=8),
                                 FCN8s(num_classes=4, width=16)], ids=["deeplab", "fcn"])
def test_logits_on_a_canvas_are_the_image_alone(net):
    rng = np.random.default_rng(0)
    shapes = [(37, 45), (52, 30)]
    images = [rng.normal(size=(*s, 3)).astype(np.float32) for s in shapes]
    # the canvas' padding holds garbage: nothing of it may reach the images' logits
    board = rng.normal(size=(2, 70, 81, 3)).astype(np.float32) * 3
    for i, im in enumerate(images):
        board[i, :im.shape[0], :im.shape[1]] = im
    variables = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    apply = jax.jit(net.apply)  # one program per input shape, not one per operation
    rng_w = np.random.default_rng(2)  # FCN's score layers start at zero: give them weights
    params = jax.tree.map(lambda v: v if np.any(v) else
                          0.1 * rng_w.normal(size=v.shape).astype(np.float32),
                          variables["params"])
    variables = {**variables, "params": params}
    if "batch_stats" in variables:
        variables["batch_stats"] = _perturbed(variables["batch_stats"])
    sizes = jnp.asarray(shapes, jnp.int32)
    on_canvas = np.asarray(apply(variables, jnp.asarray(board), sizes=sizes))
    plain = np.asarray(apply(variables, jnp.asarray(board)))
    scale = np.abs(on_canvas).max()
    assert scale > 0.1
    for i, im in enumerate(images):
        alone = np.asarray(apply(variables, jnp.asarray(im[None])))[0]
        h, w = im.shape[:2]
        np.testing.assert_allclose(on_canvas[i, :h, :w], alone, atol=2e-5 * scale)
        assert np.all(on_canvas[i, h:] == 0) and np.all(on_canvas[i, :, w:] == 0)
        # the plain forward pass of the canvas is not the image alone (the point of sizes)
        assert np.abs(plain[i, :h, :w] - alone).max() > 1e-2 * scale
    # sizes equal to the canvas: the plain forward pass
    full = apply(variables, jnp.asarray(board), sizes=canvas.full(jnp.asarray(board)))
    np.testing.assert_allclose(np.asarray(full), plain, atol=2e-5 * scale)


def test_training_on_padded_crops_stays_finite():
    """A padded crop in training (BatchNorm on batch statistics): no -inf or NaN from the
    padding reaches the statistics, the logits or the gradients."""
    net = DeepLabV3(num_classes=3, width=32, output_stride=8)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 48, 3)), jnp.float32)
    variables = jax.jit(net.init)(jax.random.key(0), x)
    sizes = jnp.asarray([[20, 30], [32, 48]], jnp.int32)

    def loss(params):
        out, updates = net.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                 x, train=True, sizes=sizes, mutable=["batch_stats"],
                                 rngs={"dropout": jax.random.key(1)})
        return jnp.sum(out ** 2), updates

    (value, updates), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        variables["params"])
    assert np.isfinite(float(value))
    for leaf in jax.tree.leaves((grads, updates)):
        assert np.all(np.isfinite(np.asarray(leaf)))
