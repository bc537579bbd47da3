"""The 2-D convolution every network uses: torch semantics, and a backward pass that is fast on
XLA:CPU.

Exact rewrites, invisible in the outputs and gradients (``tests/models/test_conv.py`` checks them
against ``lax.conv_general_dilated`` and its autodiff):

* **Taps that only ever read padding are dropped.** A dilated 3x3 conv whose rate is close to
  the feature map's size (DeepLabv3's ASPP at rates 12/24/36 on a 23x30 map, for instance) has
  kernel taps whose every read falls in the zero padding. ``useful_taps`` finds, from the static
  shapes, the taps that can touch the input; the kernel is sliced to them and the padding
  shifted, so the conv computes the same numbers with fewer multiply-adds. The dropped taps'
  gradient is exactly zero, as it is in the full conv.
* **The weight gradient is a sum of matrix products, one per tap.** XLA expresses dW of a conv
  as another convolution whose "batch" is the input channels and whose window is the whole
  feature map; XLA:CPU runs that shape far below its matmul speed (and transposes both operands
  first). Here dW[i, j] = x_tap(i, j)^T g, a dot contracting batch and space, which XLA:CPU
  runs as a plain GEMM. The input gradient keeps XLA's transposed convolution.
* **A 1x1 conv is a matrix product** (strided: of the subsampled input).
* **A conv that still mostly reads padding is a sum of per-tap GEMMs** over each tap's valid
  region (``tap_gemm_conv2d``): ASPP's rate-12 3x3 on a 23x30 map does 48% of the dense
  multiply-adds this way. So do stride-1 kernels of 5x5 and larger (FCN's fc6).

The GEMM rewrites (the last three) were measured and tuned on XLA:CPU only. They are the
``Conv`` module's field ``gemm_forms``, bound once where a network is built
(``models.build_generator`` / ``build_adversary`` pass ``functools.partial(Conv,
gemm_forms=...)`` as the networks' ``conv`` field) from ``config.model.conv_rewrites``:
``use_gemm_forms("auto")`` (default) is true when JAX's default backend is the CPU; elsewhere
every conv (after dropping the padding-only taps, which is exact and saves work anywhere) is
XLA's own convolution and its autodiff, i.e. cuDNN on NVIDIA GPUs; "on" and "off" force it.

``Conv`` is a drop-in for the subset of ``flax.linen.Conv`` the networks use (same parameter
names, shapes, initialisers and dtype promotion), so checkpoints and torchvision weights load
unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ssgan_jax.core.errors import ConfigError

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]
_DIMS = ("NHWC", "HWIO", "NHWC")

REWRITE_MODES = ("auto", "on", "off")


def use_gemm_forms(mode: str) -> bool:
    """``config.model.conv_rewrites`` -> whether convs run in their GEMM forms: "on", never
    for "off", and for "auto" when JAX's default backend is the CPU (where they were tuned)."""
    if mode not in REWRITE_MODES:
        raise ConfigError(f"config.model.conv_rewrites must be one of {REWRITE_MODES}; got "
                         f"{mode!r}")
    return jax.default_backend() == "cpu" if mode == "auto" else mode == "on"


def useful_taps(size: int, kernel: int, stride: int, dilation: int, pad: Pair) -> Pair:
    """The first and last kernel tap (along one axis) that reads at least one input pixel.

    Output position ``o`` (``0 <= o < out``) reads input ``o * stride - pad[0] + t * dilation``
    through tap ``t``; a tap is useful when some read lands in ``[0, size)``. The useful taps
    are contiguous (the reads of tap ``t`` are a shifted arithmetic progression).
    """
    out = (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"conv output would be empty: input {size}, kernel {kernel}, "
                         f"dilation {dilation}, padding {pad}, stride {stride}")

    def reads_input(t: int) -> bool:
        first = -pad[0] + t * dilation  # read of o = 0
        last = first + (out - 1) * stride
        if last < 0 or first >= size:
            return False
        # Is there o with 0 <= first + o*stride < size? The smallest read >= 0 decides.
        o = max(0, (stride - 1 - first) // stride)
        return first + o * stride < size

    taps = [t for t in range(kernel) if reads_input(t)]
    if not taps:  # every read lands in padding (the output is all zero): keep the kernel
        return 0, kernel - 1
    return taps[0], taps[-1]


def prune(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], stride: Pair,
          dilation: Pair, padding: Padding) -> tuple[tuple[slice, slice], Padding]:
    """Kernel slices and new padding that drop the taps reading only padding (same output)."""
    slices, new_pad = [], []
    for axis in range(2):
        size, k = x_shape[1 + axis], kernel_shape[axis]
        d, s, (lo, hi) = dilation[axis], stride[axis], padding[axis]
        first, last = useful_taps(size, k, s, d, (lo, hi))
        slices.append(slice(first, last + 1))
        # Dropping ``first`` leading taps moves the window start by first*d; dropping trailing
        # taps shortens the window extent by (k-1-last)*d: output positions stay the same.
        new_pad.append((lo - first * d, hi - (k - 1 - last) * d))
    return (slices[0], slices[1]), (new_pad[0], new_pad[1])


def _conv(x, w, stride: Pair, dilation: Pair, padding: Padding):
    if w.shape[:2] == (1, 1) and padding == ((0, 0), (0, 0)):
        # A 1x1 conv is a GEMM over pixels; XLA:CPU runs the dot faster than the equivalent
        # convolution, and its transpose (the input gradient) likewise (docs/PERFORMANCE.md).
        if stride != (1, 1):
            x = x[:, ::stride[0], ::stride[1], :]
        return jnp.matmul(x, w[0, 0])
    return lax.conv_general_dilated(x, w, window_strides=stride, padding=padding,
                                    rhs_dilation=dilation, dimension_numbers=_DIMS)


def _pixel_gemm(x2, g2):
    """``x2^T g2`` for [pixels, C_in] and [pixels, C_out]: [C_in, C_out], float32 accumulation.

    A GEMM library wants its left operand with the contraction last, so one of the two
    matrices must be transposed in memory: the one with fewer channels (for C_out <= C_in,
    dW^T = g2^T x2 and the small result is transposed back). ``weight_grad`` calls this once
    per tap with the same ``g2``; the compiled HLO has no per-tap copy of it (checked against
    the previous, transpose-once version: the same ops).
    """
    if g2.shape[1] <= x2.shape[1]:
        return jnp.matmul(g2.T, x2, preferred_element_type=jnp.float32).T
    return jnp.matmul(x2.T, g2, preferred_element_type=jnp.float32)


def weight_grad(x, g, kernel: Pair, stride: Pair, dilation: Pair, padding: Padding):
    """dL/dW of ``_conv`` as one GEMM per tap: ``[kh, kw, C_in, C_out]``, float32 accumulation.

    Tap (i, j) sees ``x`` padded, offset by ``(i*dh, j*dw)`` and strided: exactly the input
    pixels multiplied by ``W[i, j]`` in the forward pass, so dW[i, j] = x_tap^T g with the
    batch and both spatial axes contracted. Padding may be negative (after ``prune``);
    ``lax.pad`` crops then.
    """
    n, ho, wo, c_out = g.shape
    c_in = x.shape[3]
    pixels = n * ho * wo
    xp = lax.pad(x, jnp.zeros((), x.dtype),
                 ((0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0)))
    g2 = g.reshape(pixels, c_out)
    rows = []
    for i in range(kernel[0]):
        cols = []
        for j in range(kernel[1]):
            start = (0, i * dilation[0], j * dilation[1], 0)
            limit = (n, start[1] + stride[0] * (ho - 1) + 1, start[2] + stride[1] * (wo - 1) + 1,
                     c_in)
            tap = lax.slice(xp, start, limit, (1, stride[0], stride[1], 1)).reshape(pixels, c_in)
            cols.append(_pixel_gemm(tap, g2))
        rows.append(jnp.stack(cols))
    return jnp.stack(rows)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x, w, stride: Pair, dilation: Pair, padding: Padding):
    """NHWC x HWIO convolution (explicit padding); gradients as described in the module doc."""
    return _conv(x, w, stride, dilation, padding)


def _conv2d_fwd(x, w, stride, dilation, padding):
    return _conv(x, w, stride, dilation, padding), (x, w)


def _conv2d_bwd(stride, dilation, padding, residuals, g):
    x, w = residuals
    transpose = jax.linear_transpose(lambda x_: _conv(x_, w, stride, dilation, padding),
                                     jax.ShapeDtypeStruct(x.shape, x.dtype))
    (dx,) = transpose(g)
    dw = weight_grad(x, g, w.shape[:2], stride, dilation, padding)
    return dx, dw.astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


# Below this fraction of useful multiply-adds (the rest read padding), a stride-1 conv runs as
# one GEMM per tap over the tap's valid region instead of XLA's convolution: faster on XLA:CPU
# for ASPP's sparse dilated 3x3s, slower for ordinary 3x3 convs (docs/PERFORMANCE.md
# has the measurements behind the threshold).
TAP_GEMM_BELOW = 0.6
# Large stride-1 kernels (FCN's 7x7 fc6 on the small pool5 map) also run as tap GEMMs, which
# measured faster there at every map size tried (docs/PERFORMANCE.md).
TAP_GEMM_MIN_TAPS = 25


def _tap_ranges(size: int, kernel: int, dilation: int, pad: Pair):
    """Stride-1 output size and, per tap, (first output, end output, input offset) of the
    outputs it reads input for."""
    out = size + pad[0] + pad[1] - dilation * (kernel - 1)
    ranges = []
    for t in range(kernel):
        offset = t * dilation - pad[0]  # output o reads input o + offset
        ranges.append((max(0, -offset), min(out, size - offset), offset))
    return out, ranges


def _valid_taps(x_shape, w_shape, dilation: Pair, padding: Padding):
    """Output size and, per tap with any valid read, (i, j, r0, r1, dy, c0, c1, dx)."""
    ho, rows = _tap_ranges(x_shape[1], w_shape[0], dilation[0], padding[0])
    wo, cols = _tap_ranges(x_shape[2], w_shape[1], dilation[1], padding[1])
    taps = [(i, j, r0, r1, dy, c0, c1, dx)
            for i, (r0, r1, dy) in enumerate(rows) for j, (c0, c1, dx) in enumerate(cols)
            if r1 > r0 and c1 > c0]
    return (ho, wo), taps


def useful_fraction(x_shape, kernel_shape, stride: Pair, dilation: Pair, padding: Padding) -> float:
    """Share of a stride-1 conv's multiply-adds that read input rather than padding."""
    if stride != (1, 1):
        return 1.0
    (ho, wo), taps = _valid_taps(x_shape, kernel_shape, dilation, padding)
    useful = sum((r1 - r0) * (c1 - c0) for _, _, r0, r1, _, c0, c1, _ in taps)
    return useful / (kernel_shape[0] * kernel_shape[1] * ho * wo)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def tap_gemm_conv2d(x, w, dilation: Pair, padding: Padding):
    """A stride-1 conv as sum over taps of [pixels, C_in] @ [C_in, C_out] on the valid region.

    Tap (i, j) contributes ``x[rows + dy, cols + dx] @ W[i, j]`` to the outputs whose read lands
    inside the input; nothing is computed for reads of padding. The backward pass is GEMMs too:
    dx accumulates ``g_region @ W[i, j]^T`` and dW stacks the per-tap ``x_region^T g_region``
    (autodiff of ``W[i, j]`` would build a full-size zero cotangent per tap: 49 copies of the
    411 MB FCN fc6 kernel).
    """
    n = x.shape[0]
    (ho, wo), taps = _valid_taps(x.shape, w.shape, dilation, padding)
    out = jnp.zeros((n, ho, wo, w.shape[3]), jnp.result_type(x, w))
    for i, j, r0, r1, dy, c0, c1, dx in taps:
        y = jnp.matmul(x[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx, :], w[i, j],
                       preferred_element_type=jnp.float32).astype(out.dtype)
        out = out + jnp.pad(y, ((0, 0), (r0, ho - r1), (c0, wo - c1), (0, 0)))
    return out


def _tap_gemm_fwd(x, w, dilation, padding):
    return tap_gemm_conv2d(x, w, dilation, padding), (x, w)


def _tap_gemm_bwd(dilation, padding, residuals, g):
    x, w = residuals
    _, h, wd, c_in = x.shape
    c_out = w.shape[3]
    _, taps = _valid_taps(x.shape, w.shape, dilation, padding)
    dx_total = jnp.zeros(x.shape, jnp.float32)
    dw = [[jnp.zeros((c_in, c_out), jnp.float32) for _ in range(w.shape[1])]
          for _ in range(w.shape[0])]
    for i, j, r0, r1, dy, c0, c1, dx in taps:
        g_tap = g[:, r0:r1, c0:c1, :]
        x_tap = x[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx, :]
        d_in = jnp.matmul(g_tap, w[i, j].T, preferred_element_type=jnp.float32)
        dx_total = dx_total + jnp.pad(
            d_in, ((0, 0), (r0 + dy, h - r1 - dy), (c0 + dx, wd - c1 - dx), (0, 0)))
        dw[i][j] = _pixel_gemm(x_tap.reshape(-1, c_in), g_tap.reshape(-1, c_out))
    dw = jnp.stack([jnp.stack(row) for row in dw])
    return dx_total.astype(x.dtype), dw.astype(w.dtype)


tap_gemm_conv2d.defvjp(_tap_gemm_fwd, _tap_gemm_bwd)


def pruned_conv2d(x, w, stride: Pair, dilation: Pair, padding: Padding,
                  gemm_forms: bool = True):
    """The conv after dropping the taps that only read padding (identical result). With
    ``gemm_forms``: ``conv2d``, or ``tap_gemm_conv2d`` for a conv that would still mostly read
    padding; without, XLA's convolution of the pruned kernel."""
    (sh, sw), padding = prune(x.shape, w.shape, stride, dilation, padding)
    w = w[sh, sw]
    if not gemm_forms:
        return lax.conv_general_dilated(x, w, window_strides=stride, padding=padding,
                                        rhs_dilation=dilation, dimension_numbers=_DIMS)
    if stride == (1, 1) and (w.shape[0] * w.shape[1] >= TAP_GEMM_MIN_TAPS or useful_fraction(
            x.shape, w.shape, stride, dilation, padding) < TAP_GEMM_BELOW):
        return tap_gemm_conv2d(x, w, dilation, padding)
    return conv2d(x, w, stride, dilation, padding)


class Conv(nn.Module):
    """``flax.linen.Conv`` for NHWC inputs with explicit symmetric padding, via ``pruned_conv2d``.

    Parameters ``kernel`` [kh, kw, C_in, features] and ``bias`` [features] (float32), computed
    in ``dtype`` (inputs and parameters are cast, as flax's ``promote_dtype`` does).
    ``gemm_forms``: the XLA:CPU GEMM rewrites (module doc); off, XLA's convolution.
    """

    features: int
    kernel_size: Pair
    strides: Pair = (1, 1)
    kernel_dilation: Pair = (1, 1)
    padding: Padding = ((0, 0), (0, 0))
    use_bias: bool = False
    dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros
    gemm_forms: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init,
                            (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) \
            if self.use_bias else None
        dtype = self.dtype or jnp.result_type(x, kernel)
        y = pruned_conv2d(x.astype(dtype), kernel.astype(dtype), tuple(self.strides),
                          tuple(self.kernel_dilation), tuple(map(tuple, self.padding)),
                          self.gemm_forms)
        if bias is not None:
            y = y + bias.astype(dtype)
        return y
