"""The train state of a run: one pytree for both phases (METHOD.md, "Training").

``TrainState`` holds both networks, both optimizer states, the step and the root rng, so
phase 1, phase 2 and every checkpoint share one structure. ``init_state`` makes a fresh one;
``fresh_optimizers`` re-creates the optimizer states at the phase boundary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssgan_jax.core.parallel import AXIS
from ssgan_jax.models import build_adversary, build_generator, registry
from ssgan_jax.training.optimizers import phase_optimizers


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    step: int32 scalar, iterations done (phase 1 + phase 2); rng: the root key's data (per-step keys
    are folded from it, so the stream depends only on the step); g_*/d_*: the generator's and
    the adversary's parameters, BatchNorm statistics and optimizer states.
    """

    step: jax.Array
    rng: jax.Array
    g_params: Any
    g_batch_stats: Any
    g_opt: Any
    d_params: Any
    d_batch_stats: Any
    d_opt: Any


@dataclasses.dataclass(frozen=True)
class Networks:
    """The two modules and the optimizer of each, for one phase."""

    generator: nn.Module
    adversary: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation


# What each key folded from the run's root key (``jax.random.key(config.seed)``) is for.
RNG_INIT = 1  # the initial weights of G and A
RNG_TRAIN = 2  # state.rng: the root of every per-update dropout key


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(init key, train key) of a run with ``seed``: typed keys folded from its root."""
    root = jax.random.key(seed)
    return jax.random.fold_in(root, RNG_INIT), jax.random.fold_in(root, RNG_TRAIN)


def init_state(
    networks: Networks,
    init_rng: jax.Array,
    train_rng: jax.Array,
    image_shape: tuple[int, ...],
    num_classes: int,
) -> TrainState:
    """A fresh state for inputs ``image_shape`` = (N, H, W, 3) on the default device.

    ``init_rng`` draws the initial weights; ``train_rng`` becomes ``state.rng``, the root of
    every per-step key, stored as its raw key data (uint32) so that checkpoints hold plain
    arrays.
    """
    g_key, d_key = jax.random.split(init_rng)
    images = jnp.zeros(image_shape, jnp.float32)
    logits, g_vars = networks.generator.init_with_output(g_key, images, train=False)
    registry.check_logits(networks.generator, logits, image_shape, num_classes)
    maps = jnp.full((*image_shape[:3], num_classes), 1.0 / num_classes, jnp.float32)
    d_vars = networks.adversary.init(d_key, images, maps)
    if jax.dtypes.issubdtype(train_rng.dtype, jax.dtypes.prng_key):
        train_rng = jax.random.key_data(train_rng)
    return fresh_optimizers(
        TrainState(
            step=jnp.zeros((), jnp.int32),
            rng=train_rng,
            g_params=g_vars["params"],
            g_batch_stats=g_vars.get("batch_stats", {}),
            g_opt=None,
            d_params=d_vars["params"],
            d_batch_stats=d_vars.get("batch_stats", {}),
            d_opt=None,
        ),
        networks,
    )


def build_networks(config: ml_collections.ConfigDict, num_classes: int, phase: int) -> Networks:
    """G, A and the optimizers of ``phase`` (1 or 2) as ``config`` names them."""
    tx = phase_optimizers(config, phase)
    return Networks(
        generator=build_generator(config.model, num_classes, axis_name=AXIS),
        adversary=build_adversary(config.adversary, config.model),
        g_tx=tx.g_tx,
        d_tx=tx.d_tx,
    )


def generator_variables(state: TrainState) -> dict[str, Any]:
    """G's flax variables from a state; no empty ``batch_stats``."""
    variables = {"params": state.g_params}
    if jax.tree.leaves(state.g_batch_stats):
        variables["batch_stats"] = state.g_batch_stats
    return variables


def fresh_optimizers(state: TrainState, networks: Networks) -> TrainState:
    """Re-create both optimizer states (the paper resets them at the phase boundary)."""
    return state.replace(
        g_opt=networks.g_tx.init(state.g_params), d_opt=networks.d_tx.init(state.d_params)
    )


