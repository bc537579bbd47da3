"""BatchNorm with a hand-written backward pass; a drop-in for ``flax.linen.BatchNorm``.

Same variables as flax's (``params/{scale,bias}``, ``batch_stats/{mean,var}``, same init and
running-average rule), so checkpoints and torchvision weights load unchanged. Training-mode
normalisation (batch statistics) is one ``jax.custom_vjp``:

  forward:   mean, var = E[x], E[x^2] - E[x]^2   (one pass over x; pmean'd over ``axis_name``)
             y = x * a + b,  a = scale * rsqrt(var + eps),  b = bias - mean * a
  backward:  sum(g), sum(g * (x - mean))          (one pass over g and x)
             dx = a * g + c1 * x + c0             (one pass; c1, c0 per channel)

The residual is ``x`` itself (alive anyway, it is the conv output), where autodiff of flax's
formula keeps ``x - mean`` as an extra full-size buffer and spends several passes on the
backward; BatchNorm is about a third of the element-wise time of a DeepLabv3 step on XLA:CPU
(docs/PERFORMANCE.md). The formula is the standard one (Ioffe & Szegedy 2015, eq. after
Algorithm 1), extended with the cotangents of the returned statistics so the VJP is exact.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ssgan_jax.core.errors import ConfigError

Dtype = Any


def _reduce_axes(x: jax.Array) -> tuple[int, ...]:
    return tuple(range(x.ndim - 1))


def _pmean(v: jax.Array, axis_name: str | None) -> jax.Array:
    return v if axis_name is None else lax.pmean(v, axis_name)


def _stats(x32: jax.Array, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """Channel mean and (biased) variance of ``x32`` [..., C], averaged over ``axis_name``."""
    axes = _reduce_axes(x32)
    moments = jnp.stack([x32.mean(axes), jnp.square(x32).mean(axes)])
    mean, mean2 = _pmean(moments, axis_name)
    return mean, jnp.maximum(0.0, mean2 - jnp.square(mean))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def batch_norm_train(
    x: jax.Array,
    scale: jax.Array,
    bias: jax.Array,
    epsilon: float,
    axis_name: str | None,
    dtype: Dtype,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode BatchNorm of ``x`` [..., C] with batch statistics.

    Returns ``(y, mean, var)``: ``y`` in ``dtype``, and the float32 channel statistics over
    all axes but the last (and over the devices of ``axis_name`` when given) for the running
    averages. Statistics and arithmetic are at least float32 whatever ``x``'s dtype.
    """
    y, mean, var, _ = _forward(x, scale, bias, epsilon, axis_name, dtype)
    return y, mean, var


def _compute_dtype(x: jax.Array) -> Dtype:
    """At least float32 (half-precision inputs are normalised in float32)."""
    return jnp.promote_types(x.dtype, jnp.float32)


def normalize(x, scale, bias, mean, var, epsilon, dtype):
    """``(x - mean) * rsqrt(var + eps) * scale + bias`` as one multiply-add per element, in
    at least float32, cast to ``dtype``. Returns ``(y, rsqrt(var + eps))``."""
    ct = _compute_dtype(x)
    rstd = lax.rsqrt(var.astype(ct) + epsilon)
    a = scale.astype(ct) * rstd
    b = bias.astype(ct) - mean.astype(ct) * a
    return (x.astype(ct) * a + b).astype(dtype), rstd


def _forward(x, scale, bias, epsilon, axis_name, dtype):
    mean, var = _stats(x.astype(_compute_dtype(x)), axis_name)
    y, rstd = normalize(x, scale, bias, mean, var, epsilon, dtype)
    return y, mean, var, rstd


def _fwd(x, scale, bias, epsilon, axis_name, dtype):
    y, mean, var, rstd = _forward(x, scale, bias, epsilon, axis_name, dtype)
    return (y, mean, var), (x, scale, bias, mean, rstd)


def _bwd(epsilon, axis_name, dtype, residuals, cotangents):
    del epsilon, dtype
    x, scale, bias, mean, rstd = residuals
    g, g_mean, g_var = cotangents
    axes = _reduce_axes(x)
    count = x.size // x.shape[-1]  # elements per channel on this device
    ct = _compute_dtype(x)
    x32 = x.astype(ct)
    g32 = g.astype(ct)
    # Local sums: the scale/bias gradients of this device (the train step averages those).
    sum_g = g32.sum(axes)
    sum_gxc = (g32 * (x32 - mean)).sum(axes)
    d_bias = sum_g
    d_scale = sum_gxc * rstd
    # Gradients through the statistics see every device's elements: average over devices.
    mean_g, mean_gxc, g_mean, g_var = _pmean(
        jnp.stack([sum_g / count, sum_gxc / count, g_mean / count, g_var / count]), axis_name
    )
    a = scale.astype(ct) * rstd
    # dx = a * (g - mean_g - (x - mean) * rstd^2 * mean_gxc)
    #      + g_mean / n + 2 * g_var * (x - mean) / n        (n: elements per channel, all devices)
    c1 = -a * rstd * rstd * mean_gxc + 2.0 * g_var
    c0 = -a * mean_g - c1 * mean + g_mean
    dx = (g32 * a + x32 * c1 + c0).astype(x.dtype)
    return dx, d_scale.astype(scale.dtype), d_bias.astype(bias.dtype)


batch_norm_train.defvjp(_fwd, _bwd)


VJP_MODES = ("auto", "on", "off")


def module_for(mode: str):
    """``config.model.bn_vjp`` -> the BatchNorm class the networks use: this module's
    ``BatchNorm`` (the hand-written VJP) for "on", ``flax.linen.BatchNorm`` (autodiff of its
    formula) for "off", and for "auto" ours where JAX's default backend is the CPU, where it
    was measured faster (docs/PERFORMANCE.md), flax's elsewhere until a GPU measurement says
    otherwise. Both have the same variables, so checkpoints and weights fit either."""
    if mode not in VJP_MODES:
        raise ConfigError(f"config.model.bn_vjp must be one of {VJP_MODES}; got {mode!r}")
    ours = jax.default_backend() == "cpu" if mode == "auto" else mode == "on"
    return BatchNorm if ours else nn.BatchNorm


class BatchNorm(nn.Module):
    """BatchNorm over the last axis with flax's variables and torch's defaults.

    ``use_running_average``: normalise with the running statistics (eval, frozen BN); else
    with batch statistics (averaged over ``axis_name`` when given) and update the running ones
    as ``momentum * running + (1 - momentum) * batch`` (flax's rule; biased variance).
    """

    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: str | None = None
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        dtype = self.dtype or jnp.result_type(x, scale)
        if self.use_running_average:
            return normalize(x, scale, bias, ra_mean.value, ra_var.value, self.epsilon, dtype)[0]
        initializing = self.is_initializing()
        axis_name = None if initializing else self.axis_name
        y, mean, var = batch_norm_train(x, scale, bias, self.epsilon, axis_name, dtype)
        if not initializing:
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y
