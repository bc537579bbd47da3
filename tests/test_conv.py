"""The fast convolution (ssgan_jax/models/conv.py) against lax.conv_general_dilated + autodiff."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ssgan_jax.models import conv as fast


def _reference(x, w, stride, dilation, padding):
    return lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)


CASES = [
    # (input HxW, kernel, stride, dilation, pad, C_in, C_out)
    ((9, 11), 3, 1, 1, 1, 5, 4),      # plain 3x3
    ((9, 11), 1, 1, 1, 0, 6, 3),      # 1x1, C_out < C_in (g transposed)
    ((9, 11), 1, 2, 1, 0, 3, 6),      # strided 1x1 (ResNet downsample), C_out > C_in
    ((12, 15), 7, 2, 1, 3, 3, 4),     # ResNet stem
    ((10, 9), 3, 2, 1, 1, 4, 4),      # strided 3x3 (v1.5 bottleneck)
    ((7, 9), 3, 1, 2, 2, 4, 5),       # dilated, every tap useful
    ((5, 8), 3, 1, 6, 6, 4, 3),       # rate > H: only the middle row of taps is useful
    ((5, 6), 3, 1, 9, 9, 3, 4),       # rate > H and W: a 1x1 conv in disguise
    ((3, 3), 7, 1, 1, 3, 2, 3),       # kernel larger than the map (FCN fc6 on a small pool5)
    ((6, 7), 3, 1, 1, 0, 3, 2),       # no padding
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_forward_and_gradients_match_xla(case):
    (h, w), k, s, d, p, cin, cout = case
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(sum(case[0]) + k), 3)
    x = jax.random.normal(kx, (2, h, w, cin))
    wt = jax.random.normal(kw, (k, k, cin, cout))
    stride, dilation, padding = (s, s), (d, d), ((p, p), (p, p))
    ref, ref_vjp = jax.vjp(lambda a, b: _reference(a, b, stride, dilation, padding), x, wt)
    out, out_vjp = jax.vjp(lambda a, b: fast.pruned_conv2d(a, b, stride, dilation, padding),
                           x, wt)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    g = jax.random.normal(kg, ref.shape)
    for got, want in zip(out_vjp(g), ref_vjp(g), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_useful_taps_by_hand():
    # 23 rows, 3x3 at rate 36, pad 36: output rows 0..22 read rows o-36, o, o+36 -> only tap 1.
    assert fast.useful_taps(23, 3, 1, 36, (36, 36)) == (1, 1)
    # 30 columns at rate 24: o-24 >= 0 for o >= 24 and o+24 < 30 for o < 6 -> all three taps.
    assert fast.useful_taps(30, 3, 1, 24, (24, 24)) == (0, 2)
    # 23 rows at rate 24: o+24 >= 24 > 22 and o-24 < 0 -> the middle tap only.
    assert fast.useful_taps(23, 3, 1, 24, (24, 24)) == (1, 1)
    assert fast.useful_taps(11, 3, 1, 1, (1, 1)) == (0, 2)
    # Stride can step over the input: size 1, pad (1, 1), kernel 1, stride 2 reads -1 and 1.
    assert fast.useful_taps(1, 1, 2, 1, (1, 1)) == (0, 0)  # nothing useful: keep the kernel
    with pytest.raises(ValueError, match="empty"):
        fast.useful_taps(2, 5, 1, 1, (0, 0))


def test_prune_drops_taps_and_keeps_output_size():
    slices, padding = fast.prune((2, 23, 30, 8), (3, 3, 8, 4), (1, 1), (36, 36),
                                 ((36, 36), (36, 36)))
    assert slices == (slice(1, 2), slice(1, 2))
    assert padding == ((0, 0), (0, 0))
    slices, padding = fast.prune((2, 23, 30, 8), (3, 3, 8, 4), (1, 1), (24, 24),
                                 ((24, 24), (24, 24)))
    assert slices == (slice(1, 2), slice(0, 3)) and padding == ((0, 0), (24, 24))


def test_pruned_conv_convolves_only_the_useful_taps():
    x = jnp.zeros((2, 23, 30, 64))
    w = jnp.zeros((3, 3, 64, 32))

    def kernel_shapes(rate):
        jaxpr = jax.make_jaxpr(lambda a, b: fast.pruned_conv2d(
            a, b, (1, 1), (rate, rate), ((rate, rate), (rate, rate))))(x, w)
        eqns = [e for e in jaxpr.eqns if e.primitive.name == "custom_vjp_call"]
        inner = eqns[0].params["call_jaxpr"].jaxpr.eqns
        return [e.invars[1].aval.shape for e in inner if e.primitive.name == "conv_general_dilated"]

    assert kernel_shapes(36) == [(1, 1, 64, 32)]  # a 1x1 conv: 1/9 of the multiply-adds
    assert kernel_shapes(24) == [(1, 3, 64, 32)]
    assert kernel_shapes(12) == [(3, 3, 64, 32)]


def test_module_matches_flax_conv_parameters_and_outputs():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 10, 3))
    kwargs = dict(features=4, kernel_size=(3, 3), strides=(2, 2), kernel_dilation=(1, 1),
                  padding=((1, 1), (1, 1)), use_bias=True)
    ours = fast.Conv(**kwargs, bias_init=nn.initializers.normal(1.0))
    flax_conv = nn.Conv(**kwargs)
    variables = ours.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
        jnp.shape, flax_conv.init(jax.random.PRNGKey(1), x))
    np.testing.assert_allclose(ours.apply(variables, x), flax_conv.apply(variables, x),
                               rtol=1e-5, atol=1e-5)
    bf16 = fast.Conv(**kwargs, dtype=jnp.bfloat16).apply(variables, x)
    assert bf16.dtype == jnp.bfloat16
    grads = jax.grad(lambda v: fast.Conv(**kwargs, dtype=jnp.bfloat16).apply(v, x).astype(
        jnp.float32).sum())(variables)
    assert grads["params"]["kernel"].dtype == jnp.float32
