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
    ((9, 11), 3, 1, 6, 6, 4, 3),      # 35% useful: per-tap GEMMs (ASPP rate 12 on 23x30)
    ((5, 12), 3, 1, 4, 4, 3, 2),      # pruned to 1x3, then per-tap GEMMs
    ((4, 5), 7, 1, 1, 3, 3, 4),       # FCN fc6 on a 4x5 pool5: 37% useful, 49 tap GEMMs
    ((8, 8), 7, 1, 1, 3, 3, 4),       # fc6 on 8x8: 62% useful, still tap GEMMs (7x7 kernel)
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_forward_and_gradients_match_xla(case):
    (h, w), k, s, d, p, cin, cout = case
    rng = np.random.default_rng(sum(case[0]) + k)
    x = rng.normal(size=(2, h, w, cin)).astype(np.float32)
    wt = rng.normal(size=(k, k, cin, cout)).astype(np.float32)
    stride, dilation, padding = (s, s), (d, d), ((p, p), (p, p))

    @jax.jit  # one compilation per case (eager autodiff would compile every op)
    def outputs_and_gradients(x, wt, g):
        results = []
        for fn in (_reference, fast.pruned_conv2d):
            out, vjp = jax.vjp(lambda a, b, fn=fn: fn(a, b, stride, dilation, padding), x, wt)
            results.append((out, *vjp(g)))
        return results

    out_shape = jax.eval_shape(lambda a, b: _reference(a, b, stride, dilation, padding), x, wt)
    g = rng.normal(size=out_shape.shape).astype(np.float32)
    want, got = outputs_and_gradients(x, wt, g)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(got[1:], want[1:], strict=True):  # dx, dW
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


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


def _conv_kernels_and_dots(x, w, rate, gemm_forms=True):
    """Kernel shapes of the convolutions and the number of GEMMs in ``pruned_conv2d``'s jaxpr."""
    jaxpr = jax.make_jaxpr(lambda a, b: fast.pruned_conv2d(
        a, b, (1, 1), (rate, rate), ((rate, rate), (rate, rate)), gemm_forms))(x, w).jaxpr
    eqns = list(jaxpr.eqns)
    for e in jaxpr.eqns:
        if e.primitive.name == "custom_vjp_call":
            eqns += e.params["call_jaxpr"].jaxpr.eqns
    convs = [e.invars[1].aval.shape for e in eqns if e.primitive.name == "conv_general_dilated"]
    return convs, sum(e.primitive.name == "dot_general" for e in eqns)


def test_pruned_conv_computes_only_what_reads_input():
    x = jnp.zeros((2, 23, 30, 64))
    w = jnp.zeros((3, 3, 64, 32))
    # Rate 36: a 1x1 conv (1/9 of the multiply-adds), which runs as one GEMM.
    assert _conv_kernels_and_dots(x, w, 36) == ([], 1)
    # Rate 24: the middle row of taps, of which 47% of the reads are useful: 3 tap GEMMs.
    assert fast.useful_fraction(x.shape, (1, 3), (1, 1), (24, 24), ((0, 0), (24, 24))) < 0.5
    assert _conv_kernels_and_dots(x, w, 24) == ([], 3)
    # Rate 12: 48% useful -> 9 tap GEMMs; rate 2: 94% useful -> XLA's convolution.
    assert _conv_kernels_and_dots(x, w, 12) == ([], 9)
    assert _conv_kernels_and_dots(x, w, 2) == ([(3, 3, 64, 32)], 0)
    # A 7x7 stride-1 kernel (FCN fc6) runs as tap GEMMs even where most reads are useful.
    big = jnp.zeros((7, 7, 64, 32))
    assert fast.useful_fraction(x.shape, big.shape, (1, 1), (1, 1), ((3, 3), (3, 3))) > 0.7
    assert _conv_kernels_and_dots(x, big, 1)[0] == []


def test_useful_fraction_by_hand():
    # Rows: 23 outputs, taps at -12/0/+12 read input for 11/23/11 of them; columns 18/30/18.
    want = (45 / 69) * (66 / 90)
    got = fast.useful_fraction((2, 23, 30, 8), (3, 3), (1, 1), (12, 12), ((12, 12), (12, 12)))
    assert got == pytest.approx(want)
    assert fast.useful_fraction((2, 23, 30, 8), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))) == 1.0


def test_module_matches_flax_conv_parameters_and_outputs():
    x = jax.random.normal(jax.random.key(0), (2, 8, 10, 3))
    kwargs = dict(features=4, kernel_size=(3, 3), strides=(2, 2), kernel_dilation=(1, 1),
                  padding=((1, 1), (1, 1)), use_bias=True)
    ours = fast.Conv(**kwargs, bias_init=nn.initializers.normal(1.0), gemm_forms=True)
    flax_conv = nn.Conv(**kwargs)
    variables = ours.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
        jnp.shape, flax_conv.init(jax.random.key(1), x))
    np.testing.assert_allclose(ours.apply(variables, x), flax_conv.apply(variables, x),
                               rtol=1e-5, atol=1e-5)
    bf16 = fast.Conv(**kwargs, dtype=jnp.bfloat16, gemm_forms=True)
    assert bf16.apply(variables, x).dtype == jnp.bfloat16
    grads = jax.jit(jax.grad(lambda v: bf16.apply(v, x).astype(jnp.float32).sum()))(variables)
    assert grads["params"]["kernel"].dtype == jnp.float32


def test_tap_gemm_kernel_gradient_is_assembled_once():
    # FCN's fc6 (7x7, 49 taps) on a small pool5. Autodiff of the per-tap W[i, j] would pad each
    # tap's gradient back to the full kernel (49 kernel-sized arrays; in the full train step XLA
    # kept them live: 24 GB at 128x160 crops). The custom VJP stacks the taps instead.
    x = jnp.zeros((2, 4, 5, 64))
    w = jnp.zeros((7, 7, 64, 256))
    assert fast.useful_fraction(x.shape, w.shape, (1, 1), (1, 1), ((3, 3), (3, 3))) < 0.6
    jaxpr = jax.make_jaxpr(jax.grad(lambda w: fast.pruned_conv2d(
        x, w, (1, 1), (1, 1), ((3, 3), (3, 3))).sum()))(w)

    def kernel_sized(eqns):
        count = 0
        for e in eqns:
            for sub in jax.extend.core.jaxprs_in_params(e.params):
                count += kernel_sized(sub.eqns)
            count += e.primitive.name in ("pad", "add_any") and e.outvars[0].aval.shape == w.shape
        return count

    assert kernel_sized(jaxpr.jaxpr.eqns) <= 1


def test_rewrites_off_is_xla_convolution_of_the_pruned_kernel():
    k1, k2 = jax.random.split(jax.random.key(3))
    x = jax.random.normal(k1, (2, 23, 30, 16))
    w = jax.random.normal(k2, (3, 3, 16, 8))
    for rate, kernel in ((1, (3, 3, 16, 8)), (12, (3, 3, 16, 8)), (24, (1, 3, 16, 8)),
                         (36, (1, 1, 16, 8))):
        def loss(a, b, gemm_forms, rate=rate):
            pad = ((rate, rate), (rate, rate))
            return jnp.sum(fast.pruned_conv2d(a, b, (1, 1), (rate, rate), pad, gemm_forms) ** 2)

        on = jax.value_and_grad(loss, (0, 1))(x, w, True)
        assert _conv_kernels_and_dots(x, w, rate, gemm_forms=False) == ([kernel], 0)
        off = jax.value_and_grad(loss, (0, 1))(x, w, False)
        for a, b in zip(jax.tree.leaves(on), jax.tree.leaves(off), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    assert fast.use_gemm_forms("auto") == (jax.default_backend() == "cpu")
    assert fast.use_gemm_forms("on") and not fast.use_gemm_forms("off")
    with pytest.raises(ValueError, match="conv_rewrites must be one of"):
        fast.use_gemm_forms("gpu")
