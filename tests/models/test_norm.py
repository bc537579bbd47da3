"""The hand-written BatchNorm VJP against flax.linen.BatchNorm + autodiff."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest
from jax import lax

from ssgan_jax.models.norm import BatchNorm, batch_norm_train


def _reference(x, scale, bias, eps, axis_name=None):
    """Plain autodiff-able batch norm (two-pass variance), returning (y, mean, var)."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    if axis_name is not None:
        mean = lax.pmean(mean, axis_name)
    var = jnp.square(x - mean).mean(axes)
    if axis_name is not None:
        var = lax.pmean(var, axis_name)
    return (x - mean) * lax.rsqrt(var + eps) * scale + bias, mean, var


def _inputs(shape, seed=0):
    k = jax.random.split(jax.random.key(seed), 6)
    c = shape[-1]
    x = 3.0 * jax.random.normal(k[0], shape) + jax.random.normal(k[1], (c,))
    scale = 1.0 + 0.5 * jax.random.normal(k[2], (c,))
    bias = jax.random.normal(k[3], (c,))
    cot = (
        jax.random.normal(k[4], shape),
        jax.random.normal(k[5], (c,)),
        jax.random.normal(jax.random.fold_in(k[5], 1), (c,)),
    )
    return x, scale, bias, cot


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (4, 6)])
def test_forward_and_vjp_match_autodiff_of_the_formula(shape):
    x, scale, bias, cot = _inputs(shape)
    eps = 1e-5
    out, vjp = jax.vjp(lambda *a: batch_norm_train(*a, eps, None, jnp.float32), x, scale, bias)
    ref_out, ref_vjp = jax.vjp(lambda *a: _reference(*a, eps), x, scale, bias)
    for o, r in zip(out, ref_out, strict=True):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5)
    # Cotangents on the returned statistics too (exact VJP, not only the y path).
    for got, want in zip(vjp(cot), ref_vjp(cot), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Only the y path: what a loss sees in training.
    zeros = (cot[0], jnp.zeros_like(cot[1]), jnp.zeros_like(cot[2]))
    for got, want in zip(vjp(zeros), ref_vjp(zeros), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gradient_matches_finite_differences_in_float64():
    with jax.enable_x64():
        x, scale, bias, _ = _inputs((3, 4, 5))
        x, scale, bias = (np.asarray(v, np.float64) for v in (x, scale, bias))

        def f(x, scale, bias):
            y, mean, var = batch_norm_train(x, scale, bias, 1e-5, None, jnp.float64)
            return jnp.sum(jnp.sin(y)) + jnp.sum(mean * 0.3) + jnp.sum(jnp.cos(var))

        jax.test_util.check_grads(f, (x, scale, bias), order=1, modes=["rev"], eps=1e-6)


def test_cross_device_vjp_matches_autodiff_under_pmap():
    n_dev = jax.local_device_count()
    if n_dev < 2:
        pytest.skip("needs 2 devices (tests/conftest.py forces 2 CPU devices)")
    x, scale, bias, cot = _inputs((n_dev, 2, 3, 4, 5))

    def grads(fn):
        def per_device(x, cot):
            out, vjp = jax.vjp(fn, x, scale, bias)
            return out, vjp(cot)

        return jax.pmap(per_device, axis_name="batch")(x, cot)

    bcast = lambda v: jnp.broadcast_to(v, (n_dev,) + v.shape)  # noqa: E731
    cot = (cot[0], bcast(cot[1]), bcast(cot[2]))
    got = grads(lambda *a: batch_norm_train(*a, 1e-5, "batch", jnp.float32))
    want = grads(lambda *a: _reference(*a, 1e-5, "batch"))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    # Statistics are over all devices: each device normalises with the same mean.
    np.testing.assert_allclose(got[0][1][0], x.mean(axis=(0, 1, 2, 3)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_running_average", [False, True])
def test_module_matches_flax_batchnorm(use_running_average):
    x, _, _, _ = _inputs((2, 5, 7, 6), seed=1)
    kwargs = dict(use_running_average=use_running_average, momentum=0.9, epsilon=1e-5)
    ours, theirs = BatchNorm(**kwargs), nn.BatchNorm(**kwargs)
    variables = theirs.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(
        jnp.shape, variables
    )
    # Non-trivial parameters and running statistics.
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    moved = [v + jnp.abs(jax.random.normal(k, v.shape)) for v, k in zip(leaves, keys, strict=True)]
    variables = jax.tree.unflatten(treedef, moved)

    def loss(module, params, x):
        y, updates = module.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            mutable=["batch_stats"],
        )
        return jnp.sum(y * jnp.cos(y)), (y, updates)

    (l1, (y1, s1)), g1 = jax.value_and_grad(loss, (1, 2), has_aux=True)(
        ours, variables["params"], x
    )
    (l2, (y2, s2)), g2 = jax.value_and_grad(loss, (1, 2), has_aux=True)(
        theirs, variables["params"], x
    )
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves((s1, g1)), jax.tree.leaves((s2, g2)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
