"""ssgan_jax.Segmenter: inputs of any size and kind, one compilation per size bucket, outputs
equal to the network run on each image alone (a pointwise network, so padding cannot matter)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ssgan_jax
from ssgan_jax.inference.segmenter import InputError, Segmenter
from ssgan_jax.inference.tta import Settings

C = 4
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


class Pointwise(nn.Module):
    """Logits from each pixel alone (a 1x1 'network')."""

    @nn.compact
    def __call__(self, x, train=False, sizes=None):
        del sizes  # per pixel: no padding can reach another pixel
        return nn.Dense(C)(jnp.tanh(nn.Dense(8)(x)))


def _segmenter(**kw):
    net = Pointwise()
    variables = net.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
    return Segmenter.from_variables(net, variables, class_names=[f"c{i}" for i in range(C)],
                                    mean=MEAN, std=STD, **kw), net, variables


def _direct(net, variables, image):
    x = (image.astype(np.float32) - np.asarray(MEAN, np.float32) * 255) / (
        np.asarray(STD, np.float32) * 255)
    return np.asarray(jax.nn.softmax(net.apply(variables, jnp.asarray(x[None]))[0], -1))


def _image(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_one_compilation_per_size_bucket_and_exact_outputs():
    seg, net, variables = _segmenter(bucket=64)
    rng = np.random.default_rng(0)
    a, b = _image(rng, 100, 150), _image(rng, 120, 160)  # both pad to 128 x 192
    out = seg.probabilities([a, b])
    assert seg.compilations == 1 and [o.shape for o in out] == [(100, 150, C), (120, 160, C)]
    for image, got in ((a, out[0]), (b, out[1])):
        np.testing.assert_allclose(got, _direct(net, variables, image), rtol=1e-5, atol=1e-6)
    seg.probabilities([_image(rng, 110, 129), _image(rng, 101, 191)])  # 128 x 192 again
    assert seg.compilations == 1
    single = seg.predict(_image(rng, 64, 64))  # a new bucket: 64 x 64, batch 1
    assert single.shape == (64, 64) and single.dtype == np.uint8 and seg.compilations == 2
    batch = np.stack([_image(rng, 64, 64)] * 3)  # batch 3 -> bucket 4, new program
    got = seg.predict(batch)
    assert got.shape == (3, 64, 64) and seg.compilations == 3
    np.testing.assert_array_equal(got[1], _direct(net, variables, batch[1]).argmax(-1))
    seg.predict(np.stack([_image(rng, 60, 50)] * 4))  # same bucket (4, 64, 64)
    assert seg.compilations == 3


def test_inputs_are_converted_or_refused_in_one_line():
    seg, net, variables = _segmenter(bucket=16)
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    np.testing.assert_allclose(seg.probabilities(grey), _direct(
        net, variables, np.repeat(grey[:, :, None], 3, 2)), rtol=1e-5, atol=1e-6)
    rgba = _image(rng, 20, 30)
    rgba = np.concatenate([rgba, np.full((20, 30, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(seg.predict(rgba), seg.predict(rgba[:, :, :3]))
    with pytest.raises(InputError, match="dtype float32; give uint8 RGB"):
        seg.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError, match=r"image 1 has shape \(8, 8, 2\)"):
        seg.predict([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 2), np.uint8)])
    assert seg.predict([]) == []
    assert ssgan_jax.Segmenter is Segmenter  # the package exports it (lazily)


def test_inference_settings_are_used():
    """Flip averaging of a pointwise network equals no flip (the flip is undone)."""
    rng = np.random.default_rng(2)
    image = _image(rng, 33, 47)
    plain, _, _ = _segmenter()
    flipped, _, _ = _segmenter(settings=Settings(flip=True, scales=(1.0,)))
    np.testing.assert_allclose(flipped.probabilities(image), plain.probabilities(image),
                               rtol=1e-5, atol=1e-6)
