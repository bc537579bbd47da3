"""Helpers of the step tests (``test_steps``, ``test_semi``, ``test_semi_run``): tiny
networks, a batch whose classes are colours, a fresh state, plain-SGD optimizers."""

import jax
import numpy as np
import optax

from ssgan_jax.training import state as state_lib

from ..data.conftest import COLOURS

C = 11


def make_networks(config, phase):
    return state_lib.build_networks(config, C, phase)


def make_batch(n=4, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.repeat(rng.integers(0, C, size=(n, h // 8, w // 8)), 8, 1), 8, 2)
    labels[:, :2] = 255
    colours = (COLOURS.astype(np.float32) - 128) / 64  # each class its own colour
    images = colours[np.where(labels == 255, 0, labels)]
    images += rng.normal(size=images.shape).astype(np.float32) * 0.1
    return {"image": images, "label": labels.astype(np.int32)}


def make_state(config, nets, h=32, w=48):
    return jax.device_get(state_lib.init_state(nets, jax.random.key(1), jax.random.key(2),
                                           (1, h, w, 3), C))


def sgd_networks(nets):
    """Adam maps rounding-noise gradients (~1e-9) to +-lr steps; plain SGD shows the gradient."""
    sgd = optax.sgd(0.1, momentum=0.9)  # the first step is plain SGD; the state is not empty
    return state_lib.Networks(nets.generator, nets.adversary, sgd, sgd)


def split_over(batch, d):
    return {k: v.reshape(d, v.shape[0] // d, *v.shape[1:]) for k, v in batch.items()}


def max_diff(a, b):
    return max(float(np.abs(x - y).max())
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
