"""Images on a padded canvas: each image's own size carried through the layers (METHOD.md,
"Inference").

Evaluation, ``Segmenter`` and training crops put images of several sizes on one canvas, each at
the top-left, the rest padding. A network given ``sizes`` (int32 ``[N, 2]``: each image's height
and width on the canvas) computes, at every pixel of each image, what it computes on that image
alone at its own size: before every layer that mixes positions (a conv wider than 1x1, a pool,
the image-level average, the final resize) the positions outside the image's region at that
depth are set to what the unpadded forward pass reads there (zero padding, or -inf for a max
pool), the image-level average divides by the image's own area, and the final upsampling maps
each image's own feature size to its own size. ``sizes=None`` is the plain forward pass of the
whole canvas (torchvision's computation), with none of these operations in the program. In
training (``train=True``) the networks follow ``sizes`` in the pooling and the upsampling only
(METHOD.md section 6: the masks cost a tenth of a CPU step and crops are seldom padded).

The regions stay rectangles at the top-left through every layer: an output position of a conv
(kernel k, stride s, dilation d, padding p) exists in the unpadded pass when it is below
``(n + 2p - d (k - 1) - 1) // s + 1`` along each axis (``conv_sizes``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def conv_sizes(sizes: jax.Array | None, kernel: int, stride: int = 1, dilation: int = 1,
               padding: int | None = None) -> jax.Array | None:
    """The region sizes after a conv or pool (torch's output-size rule), ``[N, 2]``."""
    if sizes is None:
        return None
    pad = dilation * (kernel - 1) // 2 if padding is None else padding
    reach = sizes + 2 * pad - dilation * (kernel - 1) - 1  # < 0: an empty region
    return jnp.where(reach < 0, 0, div(jnp.maximum(reach, 0), stride) + 1)


def div(sizes: jax.Array, k: int) -> jax.Array:
    """``sizes // k`` of non-negative sizes, as a truncating division (the one integer
    division every exporter has: jax2onnx 0.17 cannot lower floor division's remainder with a
    symbolic batch)."""
    return jax.lax.div(sizes, jnp.asarray(k, sizes.dtype))


def round_up(sizes: jax.Array, k: int) -> jax.Array:
    """Non-negative ``sizes`` rounded up to multiples of ``k``."""
    return div(sizes + (k - 1), k) * k


def inside(sizes: jax.Array, height: int, width: int) -> jax.Array:
    """bool ``[N, height, width, 1]``: whether each position lies in its image's region."""
    rows = jnp.arange(height)[None, :] < sizes[:, 0:1]
    cols = jnp.arange(width)[None, :] < sizes[:, 1:2]
    return (rows[:, :, None] & cols[:, None, :])[..., None]


def mask(x: jax.Array, sizes: jax.Array | None, fill: float = 0.0) -> jax.Array:
    """``x`` [N, H, W, C] with the positions outside each region set to ``fill``: what a
    layer reading past the image reads in the unpadded pass (0 for a conv's padding, -inf for
    a max pool's)."""
    if sizes is None:
        return x
    return jnp.where(inside(sizes, x.shape[1], x.shape[2]), x, jnp.asarray(fill, x.dtype))


def mean(x: jax.Array, sizes: jax.Array | None) -> jax.Array:
    """[N, 1, 1, C]: the average of each image's region (DeepLabv3's image-level pooling)."""
    if sizes is None:
        return jnp.mean(x, axis=(1, 2), keepdims=True)
    total = jnp.sum(mask(x, sizes), axis=(1, 2), keepdims=True)
    area = (sizes[:, 0] * sizes[:, 1]).astype(x.dtype)[:, None, None, None]
    return total / jnp.maximum(area, jnp.ones((), x.dtype))  # (a typed 1: no dtype promotion)


def resize_matrix(in_sizes: jax.Array, out_sizes: jax.Array, in_len: int,
                  out_len: int) -> jax.Array:
    """float32 ``[N, out_len, in_len]``: per image, the bilinear resize (half-pixel centres) of
    its ``in_sizes[i]`` positions to ``out_sizes[i]``; antialiased when shrinking, so it is
    ``layers.bilinear_matrix`` upsampling and ``jax.image.resize`` downsampling. Rows past
    ``out_sizes[i]`` and columns past ``in_sizes[i]`` are zero."""
    n_in = in_sizes.astype(jnp.float32)[:, None, None]
    n_out = out_sizes.astype(jnp.float32)[:, None, None]
    n_in, n_out = jnp.maximum(n_in, 1.0), jnp.maximum(n_out, 1.0)  # (empty: all zero)
    i = jnp.arange(out_len, dtype=jnp.float32)[None, :, None]
    j = jnp.arange(in_len, dtype=jnp.float32)[None, None, :]
    x = (i + 0.5) * n_in / n_out - 0.5
    shrink = jnp.minimum(n_out / n_in, 1.0)  # the triangle widens by 1/shrink (antialias)
    w = jnp.maximum(0.0, 1.0 - jnp.abs(x - j) * shrink)
    w = jnp.where((j < in_sizes[:, None, None]) & (i < out_sizes[:, None, None]), w, 0.0)
    return w / jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), 1e-12)


def resize(x: jax.Array, sizes: jax.Array, out_sizes: jax.Array, height: int,
           width: int) -> jax.Array:
    """[N, height, width, C]: each image's ``sizes`` region of ``x`` resized bilinearly to
    its ``out_sizes`` region (zero outside it)."""
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    mh = resize_matrix(sizes[:, 0], out_sizes[:, 0], x.shape[1], height).astype(dtype)
    mw = resize_matrix(sizes[:, 1], out_sizes[:, 1], x.shape[2], width).astype(dtype)
    return jnp.einsum("noh,nhwc,npw->nopc", mh, x.astype(dtype), mw,
                      precision=jax.lax.Precision.HIGHEST).astype(x.dtype)


def flip(x: jax.Array, sizes: jax.Array) -> jax.Array:
    """Each image's region flipped left-right in place (position j < width reads
    width - 1 - j); the padding stays where it is."""
    w = x.shape[2]
    j = jnp.arange(w)[None, :]
    source = jnp.where(j < sizes[:, 1:2], sizes[:, 1:2] - 1 - j, j)  # [N, W]
    return jnp.take_along_axis(x, source[:, None, :, None], axis=2)


def full(images: jax.Array) -> jax.Array:
    """int32 [N, 2]: every image fills the canvas."""
    n, h, w = images.shape[:3]
    return jnp.broadcast_to(jnp.asarray([h, w], jnp.int32), (n, 2))


def from_mask(valid: jax.Array) -> jax.Array:
    """int32 [N, 2] sizes of top-left validity masks ``[N, H, W]`` bool (rows and columns
    holding a valid pixel)."""
    return jnp.stack([jnp.sum(jnp.any(valid, axis=2), axis=1),
                      jnp.sum(jnp.any(valid, axis=1), axis=1)], axis=-1).astype(jnp.int32)
