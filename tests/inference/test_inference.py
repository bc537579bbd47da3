"""Test-time inference: sliding windows, multi-scale and flip TTA (ssgan_jax/tta.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.core import config as default_config
from ssgan_jax.inference import tta
from ssgan_jax.inference.tta import Settings, predict_logits, sliding_logits, window_starts


def test_window_starts_hand_values():
    assert window_starts(10, 4, 3) == [0, 3, 6]  # 6 + 4 == 10: no extra window
    assert window_starts(10, 4, 4) == [0, 4, 6]  # the last window ends at the border
    assert window_starts(3, 5, 2) == [0]  # window larger than the image
    assert window_starts(8, 8, 3) == [0]


def _conv_model(kernel: np.ndarray):
    """apply(x) = 'SAME' conv of x with ``kernel`` [kh, kw, 3, C] (symmetric zero padding)."""
    k = jnp.asarray(kernel)

    def apply(x, sizes=None):
        del sizes  # not told about padding: sees the whole canvas
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return apply


def _canvas_model(kernel: np.ndarray):
    """apply(x, sizes): a 'SAME' conv plus the image-level mean, each image as alone at its
    own size when ``sizes`` is given (models.canvas), like the real networks."""
    from ssgan_jax.models import canvas

    k = jnp.asarray(kernel)

    def apply(x, sizes=None):
        y = jax.lax.conv_general_dilated(canvas.mask(x, sizes), k, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return canvas.mask(y + canvas.mean(y, sizes), sizes)
    return apply


def _numpy_sliding(apply, images, window, stride):
    """An independent loop: every window's logits added to the pixels it covers, / counts."""
    n, h, w, _ = images.shape
    total, count = None, np.zeros((h, w))
    for y in window_starts(h, window[0], stride[0]):
        for x in window_starts(w, window[1], stride[1]):
            out = np.asarray(apply(images[:, y:y + window[0], x:x + window[1]]))
            if total is None:
                total = np.zeros((n, h, w, out.shape[-1]))
            total[:, y:y + window[0], x:x + window[1]] += out
            count[y:y + window[0], x:x + window[1]] += 1
    return total / count[None, :, :, None]


def test_sliding_window_averages_overlapping_logits():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(2, 11, 16, 3)), jnp.float32)
    context = _conv_model(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    got = sliding_logits(context, images, (5, 7), (3, 4))
    want = _numpy_sliding(context, images, (5, 7), (3, 4))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # A conv with context sees padding at window borders: sliding differs from whole here ...
    assert not np.allclose(got, context(images), atol=1e-3)
    # ... but a pointwise model has no context: every window agrees with the whole image.
    pointwise = _conv_model(rng.normal(size=(1, 1, 3, 4)).astype(np.float32))
    np.testing.assert_allclose(sliding_logits(pointwise, images, (5, 7), (3, 4)),
                               pointwise(images), rtol=1e-5, atol=1e-5)
    # bounded memory (2 windows per call) gives the same logits
    np.testing.assert_allclose(sliding_logits(context, images, (5, 7), (3, 4), 2), got,
                               rtol=1e-6, atol=1e-6)


def test_one_window_equals_whole_image():
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.normal(size=(1, 9, 12, 3)), jnp.float32)
    model = _conv_model(rng.normal(size=(3, 3, 3, 5)).astype(np.float32))
    whole = predict_logits(model, images, Settings())
    for window in ((9, 12), (16, 16)):  # equal to, and larger than, the image
        sliding = predict_logits(model, images, Settings(mode="sliding", window=window,
                                                         stride=window))
        np.testing.assert_array_equal(sliding, whole)


def test_flip_tta():
    rng = np.random.default_rng(2)
    images = jnp.asarray(rng.normal(size=(2, 8, 10, 3)), jnp.float32)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    symmetric = _conv_model(kernel + kernel[:, ::-1])  # flip-equivariant: f(flip x) = flip f(x)
    np.testing.assert_allclose(predict_logits(symmetric, images, Settings(flip=True)),
                               predict_logits(symmetric, images, Settings()),
                               rtol=1e-5, atol=1e-5)
    plain = _conv_model(kernel)  # not equivariant: the mean of f(x) and flip(f(flip(x)))
    want = 0.5 * (np.asarray(plain(images)) + np.asarray(plain(images[:, :, ::-1]))[:, :, ::-1])
    got = predict_logits(plain, images, Settings(flip=True))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, plain(images), atol=1e-3)


def test_multi_scale_resizes_back_and_averages():
    images = jnp.full((1, 8, 12, 3), 0.5, jnp.float32)  # constant: every scale sees the same
    pointwise = _conv_model(np.ones((1, 1, 3, 2), np.float32))
    out = predict_logits(pointwise, images, Settings(scales=(0.5, 1.0, 1.5), flip=True))
    assert out.shape == (1, 8, 12, 2)
    np.testing.assert_allclose(out, 1.5, rtol=1e-6)
    ramp = jnp.broadcast_to(jnp.linspace(0, 1, 12)[None, None, :, None], (1, 8, 12, 3))
    two = predict_logits(pointwise, ramp, Settings(scales=(1.0, 0.5)))
    half = np.asarray(predict_logits(pointwise, ramp, Settings(scales=(0.5,))))
    np.testing.assert_allclose(two, 0.5 * (np.asarray(pointwise(ramp)) + half), rtol=1e-5,
                               atol=1e-6)


def test_settings_from_config_and_bad_values():
    config = default_config.get_config()
    config.data.crop_size = (321, 480)
    s = tta.from_config(config)
    assert s.mode == "whole" and s.window == (321, 480) and s.stride == (214, 320)
    assert s.tag() == ""
    config.eval.mode = "sliding"
    config.eval.scales = (0.75, 1, 1.25)
    config.eval.flip = True
    assert tta.from_config(config).tag() == "sliding321x480s214x320_scales0.75-1-1.25_flip"
    with pytest.raises(ValueError, match="config.eval.mode"):
        Settings(mode="tiles")
    with pytest.raises(ValueError, match="larger than the window"):
        Settings(mode="sliding", window=(10, 10), stride=(11, 5))
    with pytest.raises(ValueError, match="config.eval.scales"):
        Settings(scales=(0.0,))


def test_an_image_three_times_eval_size_goes_through_windows_like_a_whole_pass():
    """A pointwise network (1x1 conv): the windows of ``oversize_settings`` give what one
    whole-image pass gives; the windows are eval_size, stride 2/3 of it."""
    import flax.linen as nn

    from ssgan_jax.inference.tta import make_predict_fn, oversize_settings

    net = nn.Conv(5, (1, 1))
    variables = net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))

    class Pointwise:
        @staticmethod
        def apply(v, x, train=False, sizes=None):
            del train, sizes
            return net.apply(v, x)

    eval_size = (20, 24)
    image = jax.random.normal(jax.random.key(1), (1, 60, 72, 3))  # 3x eval_size
    big = oversize_settings(Settings(), eval_size)
    assert (big.mode, big.window, big.stride) == ("sliding", (20, 24), (14, 16))
    windows = make_predict_fn(Pointwise, big)(variables, image)
    whole = make_predict_fn(Pointwise, Settings())(variables, image)
    np.testing.assert_array_equal(np.asarray(windows), np.asarray(whole))
    logits = predict_logits(lambda x, s: net.apply(variables, x), image, big)
    np.testing.assert_allclose(logits, net.apply(variables, image), rtol=1e-6, atol=1e-6)
    sliding = Settings(mode="sliding", window=(8, 8), stride=(4, 4), flip=True)
    assert oversize_settings(sliding, eval_size) == sliding  # the run's own windows
    # a huge image: a few windows per forward pass (bounded memory), the same logits
    bounded = oversize_settings(Settings(), eval_size, 3)
    assert bounded.windows_per_call == 3 and oversize_settings(sliding, eval_size, 3) == \
        Settings(mode="sliding", window=(8, 8), stride=(4, 4), flip=True, windows_per_call=3)
    np.testing.assert_allclose(predict_logits(lambda x, s: net.apply(variables, x), image,
                                              bounded), logits, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("settings", [
    Settings(), Settings(flip=True), Settings(scales=(0.5, 1.0, 1.5), flip=True),
    Settings(mode="sliding", window=(7, 9), stride=(5, 6), flip=True),
    Settings(mode="sliding", window=(7, 9), stride=(5, 6), windows_per_call=2)],
    ids=["whole", "flip", "scales-flip", "sliding", "sliding-2-per-call"])
def test_views_of_an_image_on_a_canvas_are_those_of_the_image_alone(settings):
    """With sizes, flips mirror each image inside its own width, scales resize its own
    region, windows count only where they hold the image: the canvas' padding (garbage here)
    changes nothing. (Sliding windows are laid on the canvas: the image that fills it.)"""
    rng = np.random.default_rng(3)
    model = _canvas_model(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    shapes = [(13, 17), (9, 11)]
    board = rng.normal(size=(2, 13, 17, 3)).astype(np.float32) * 5
    images = [rng.normal(size=(*s, 3)).astype(np.float32) for s in shapes]
    for i, im in enumerate(images):
        board[i, :im.shape[0], :im.shape[1]] = im
    got = np.asarray(predict_logits(model, jnp.asarray(board), settings,
                                    jnp.asarray(shapes, jnp.int32)))
    checked = shapes if settings.mode == "whole" else shapes[:1]
    for i, (h, w) in enumerate(checked):
        alone = np.asarray(predict_logits(model, jnp.asarray(images[i][None]), settings))[0]
        np.testing.assert_allclose(got[i, :h, :w], alone, rtol=1e-4, atol=1e-4)
    plain = np.asarray(predict_logits(model, jnp.asarray(board), settings))
    assert not np.allclose(plain[1, :9, :11], got[1, :9, :11], atol=1e-2)


@pytest.mark.parametrize("with_sizes", [False, True])
def test_the_sliding_window_program_does_not_grow_with_the_number_of_windows(with_sizes):
    """The windows are one gather and one scatter-add, not a loop unrolled into the program:
    4 windows and 961 give programs of the same operations (an unrolled loop made a
    1024x2048 image with 3 scales and flip compile for 221 s)."""
    def apply(x, sizes):
        return jnp.concatenate([x, 2 * x[..., :1]], axis=-1)

    def ops(side, stride):
        x = jnp.zeros((1, side, side, 3))
        sizes = jnp.asarray([[side - 3, side - 5]], jnp.int32) if with_sizes else None
        text = jax.jit(lambda a, s: sliding_logits(apply, a, (16, 16), (stride, stride),
                                                   sizes=s)).lower(x, sizes).as_text()
        return sum(1 for line in text.splitlines() if "stablehlo." in line)

    few, many = ops(32, 16), ops(256, 8)  # 2x2 and 31x31 windows
    assert few > 0 and many <= few + 2, (few, many)
    # and the numbers are the windows' average: a pixel covered by 4 windows of a constant
    x = jnp.ones((1, 40, 40, 3))
    out = sliding_logits(apply, x, (16, 16), (8, 8))
    np.testing.assert_allclose(np.asarray(out), np.broadcast_to([1, 1, 1, 2], out.shape),
                               rtol=1e-6)
