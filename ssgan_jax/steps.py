"""The train state and the pure step functions of both phases (PAPER.md sections 5-6).

``TrainState`` is one pytree for the whole run (both networks, both optimizers, the step and
the root rng), so phase 1, phase 2 and every checkpoint share one structure.
``make_train_step`` builds the generator step and the adversary step from one body; they
differ in which parameters get gradients and which loss. The caller pmaps them over the local
devices (axis ``AXIS``); gradients are averaged over all devices of all processes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.jax_utils
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssgan_jax import losses
from ssgan_jax.models import build_adversary, build_generator
from ssgan_jax.rescaling import epsilon_rescale

AXIS = "batch"
ROLES = ("generator", "adversary")


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    step: int32 scalar, iterations done (phase 1 + phase 2); rng: the root key (per-step keys
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


def make_optimizer(
    kind: str,
    lr: float,
    end_lr: float,
    steps: int,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    clip_norm: float = 0.0,
    adam_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Adam ("adam") or SGD with momentum ("sgd"), lr decayed linearly lr -> end_lr over steps.

    The chain has the same structure whatever the values (clipping and weight decay are
    identities at 0), so the optimizer state of either phase fits one checkpoint layout.
    """
    if lr <= 0 or end_lr < 0:
        raise ValueError(f"learning rates must be > 0 (end >= 0); got lr={lr}, end_lr={end_lr}")
    schedule = optax.linear_schedule(lr, end_lr, max(int(steps), 1))
    if kind == "adam":
        core = optax.scale_by_adam(eps=adam_eps)
    elif kind == "sgd":
        core = optax.trace(decay=momentum)
    else:
        raise ValueError(f"optimizer kind must be 'adam' or 'sgd'; got {kind!r}")
    return optax.chain(
        optax.clip_by_global_norm(clip_norm) if clip_norm > 0 else optax.identity(),
        optax.add_decayed_weights(weight_decay),
        core,
        optax.scale_by_learning_rate(schedule),
    )


def phase_optimizers(config: ml_collections.ConfigDict, phase: int):
    """(g_tx, d_tx, g_schedule) of phase 1 or 2 (PAPER.md section 6)."""
    opt = config.optim
    p = config.phase1 if phase == 1 else config.phase2
    g = (p.lr, p.end_lr, p.steps)
    g_tx = make_optimizer("adam", *g, weight_decay=opt.weight_decay,
                          clip_norm=opt.grad_clip_norm, adam_eps=opt.adam_eps)
    d_tx = make_optimizer(
        "sgd", config.phase2.d_lr, config.phase2.d_end_lr, config.phase2.steps,
        momentum=config.phase2.d_momentum, weight_decay=opt.d_weight_decay,
        clip_norm=opt.d_grad_clip_norm,
    )
    return g_tx, d_tx, optax.linear_schedule(g[0], g[1], max(int(g[2]), 1))


def _variables(params, batch_stats) -> dict[str, Any]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def init_state(
    networks: Networks,
    init_rng: jax.Array,
    train_rng: jax.Array,
    image_shape: tuple[int, ...],
    num_classes: int,
) -> TrainState:
    """A fresh state for inputs ``image_shape`` = (N, H, W, 3) on the default device.

    ``init_rng`` draws the initial weights; ``train_rng`` becomes ``state.rng``, the root of
    every per-step key.
    """
    g_key, d_key = jax.random.split(init_rng)
    images = jnp.zeros(image_shape, jnp.float32)
    g_vars = networks.generator.init(g_key, images, train=False)
    maps = jnp.full((*image_shape[:3], num_classes), 1.0 / num_classes, jnp.float32)
    d_vars = networks.adversary.init(d_key, images, maps)
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
    g_tx, d_tx, _ = phase_optimizers(config, phase)
    return Networks(
        generator=build_generator(config.model, num_classes, axis_name=AXIS),
        adversary=build_adversary(config.adversary, config.model.dtype,
                                  config.model.conv_rewrites),
        g_tx=g_tx,
        d_tx=d_tx,
    )


def generator_variables(state: TrainState) -> dict[str, Any]:
    """G's flax variables from a (host or replicated) state; no empty ``batch_stats``."""
    variables = {"params": state.g_params}
    if jax.tree.leaves(state.g_batch_stats):
        variables["batch_stats"] = state.g_batch_stats
    return variables


@functools.cache
def _identity_pmap():
    return jax.pmap(lambda x: x, axis_name=AXIS)  # outputs live on a mesh named after it


def shard(tree):
    """``[local_devices, ...]`` leaves onto the local devices, laid out exactly as the train
    steps' outputs (pmapped over ``AXIS``) are.

    ``flax.jax_utils.replicate`` places arrays on another mesh than pmap's outputs, so a step
    fed its result at the first call and its own outputs afterwards lowers twice: a whole
    extra compilation at the second step of each phase. This layout avoids it.
    """
    return _identity_pmap()(tree)


def replicate(tree):
    """``tree`` copied to every local device, laid out as ``shard`` lays arrays out."""
    return shard(flax.jax_utils.replicate(tree))


def fresh_optimizers(state: TrainState, networks: Networks) -> TrainState:
    """Re-create both optimizer states (the paper resets them at the phase boundary)."""
    return state.replace(
        g_opt=networks.g_tx.init(state.g_params), d_opt=networks.d_tx.init(state.d_params)
    )


def _device_mean(tree, axis_name: str):
    """``pmean`` over the devices; the identity on one device, where XLA:CPU would still copy
    every gradient through an all-reduce (23 ms per DeepLabv3 step on the 2-core VM)."""
    return tree if jax.lax.psum(1, axis_name) == 1 else jax.lax.pmean(tree, axis_name)


class _Updates:
    """The pieces every step is made of, for one phase's networks and one config: G's forward,
    the loss heads of both networks and the two optimizer updates. Pure functions of their
    arguments; the step builders below only wire them together."""

    def __init__(self, networks: Networks, config: ml_collections.ConfigDict, axis_name: str):
        self.nets, self.loss_cfg, self.axis_name = networks, config.loss, axis_name
        self.eps = config.rescaling.eps
        self.bn_train = config.model.bn_mode == "train"

    def rng(self, state: TrainState, sub: jax.Array) -> jax.Array:
        """The per-update dropout key: root folded with step, update index and device."""
        rng = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), sub)
        return jax.random.fold_in(rng, jax.lax.axis_index(self.axis_name))

    def generator_forward(self, state, params, images, rng):
        """G(images) in train mode -> (logits, G's new BatchNorm statistics)."""
        out = self.nets.generator.apply(
            _variables(params, state.g_batch_stats), images, train=True,
            rngs={"dropout": rng}, mutable=["batch_stats"] if self.bn_train else False,
        )
        logits, updates = out if self.bn_train else (out, {})
        return logits, updates.get("batch_stats", state.g_batch_stats)

    def generator_head(self, state, logits, images, labels, adversarial):
        """(loss_g, parts) of G's logits: mce (Eq. 3), plus lam * adv (Eq. 5) in phase 2 with
        ``state``'s adversary."""
        devices = jax.lax.psum(1, self.axis_name)
        labelled = jax.lax.psum(jnp.sum(labels != self.loss_cfg.ignore_label), self.axis_name)
        ce_sum, _ = losses.cross_entropy_sum(logits, labels, self.loss_cfg.ignore_label)
        # this device's share of the global mean; pmean over devices gives the mean
        ce = ce_sum * devices / jnp.maximum(labelled, 1).astype(jnp.float32)
        if not adversarial:
            return ce, {"ce": ce}
        fake = self.nets.adversary.apply(_variables(state.d_params, state.d_batch_stats), images,
                                         jax.nn.softmax(logits, axis=-1))
        loss, adv = losses.generator_loss(ce, fake, self.loss_cfg.lam, self.loss_cfg.adv_form)
        return loss, {"ce": ce, "adv": adv, "loss_g": loss}

    def apply_generator_grads(self, state, grads, batch_stats):
        grads = _device_mean(grads, self.axis_name)
        updates, g_opt = self.nets.g_tx.update(grads, state.g_opt, state.g_params)
        return state.replace(
            g_params=optax.apply_updates(state.g_params, updates), g_opt=g_opt,
            g_batch_stats=batch_stats if self.bn_train else state.g_batch_stats,
        ), {"g_grad_norm": optax.global_norm(grads)}

    def adversary_update(self, state, images, labels, probs):
        """One A update (Eq. 6-7) on G's probabilities ``probs`` (no gradient to G): the real
        map is their epsilon-rescaling (Eq. 1-2); both maps share one image-branch pass."""
        real = epsilon_rescale(probs, labels, self.eps, self.loss_cfg.ignore_label)
        both_maps = jnp.concatenate([real, probs])
        n = images.shape[0]

        def loss_fn(d_params):
            out = self.nets.adversary.apply(_variables(d_params, state.d_batch_stats), images,
                                            both_maps)
            real_logits, fake_logits = out[:n], out[n:]
            loss = self.loss_cfg.d_weight * losses.adversary_loss(real_logits, fake_logits)
            return loss, (real_logits, fake_logits)

        (loss_d, (real_logits, fake_logits)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.d_params)
        grads = _device_mean(grads, self.axis_name)
        updates, d_opt = self.nets.d_tx.update(grads, state.d_opt, state.d_params)
        state = state.replace(d_params=optax.apply_updates(state.d_params, updates), d_opt=d_opt)
        return state, {
            "loss_d": loss_d,
            "d_acc_real": jnp.mean(real_logits > 0),
            "d_acc_fake": jnp.mean(fake_logits < 0),
            "d_out_real": jnp.mean(jax.nn.sigmoid(real_logits)),
            "d_out_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
            "d_grad_norm": optax.global_norm(grads),
        }

    def finish(self, state, metrics, advance):
        """Average the metrics over devices and advance ``state.step`` by ``advance``."""
        metrics = jax.lax.pmean(
            {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}, self.axis_name)
        return state.replace(step=state.step + jnp.asarray(advance).astype(jnp.int32)), metrics


def make_train_step(
    role: str,
    networks: Networks,
    config: ml_collections.ConfigDict,
    *,
    adversarial: bool,
    advances: Callable[[jax.Array], jax.Array] | None = None,
    axis_name: str = AXIS,
):
    """One update of ``role`` ("generator" or "adversary"); the other network is frozen.

    Returns ``step(state, batch, sub) -> (state, metrics)`` to be pmapped over ``axis_name``:
    batch = {"image": [B, H, W, 3] f32, "label": [B, H, W] i32} per device; ``sub`` the
    int32 index of this update within its iteration (it decorrelates dropout between the
    updates of one iteration). ``advances(sub)`` says whether this update ends the iteration
    (then ``state.step`` grows by 1); by default every generator update does.

    generator: loss_g = mce + lam * adv (Eq. 5) when ``adversarial`` (phase 2), else mce.
    adversary: loss_d = bce(1, A(x, v)) + bce(0, A(x, g(x))) (Eq. 6-7), with v the
    epsilon-rescaled real map built from G's own probabilities (Eq. 1-2).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}; got {role!r}")
    u = _Updates(networks, config, axis_name)
    if advances is None:
        def advances(sub):
            return jnp.asarray(role == "generator")

    def step(state: TrainState, batch: dict[str, jax.Array], sub: jax.Array):
        images, labels = batch["image"], batch["label"]
        rng = u.rng(state, sub)
        if role == "generator":
            def loss_fn(g_params):
                logits, batch_stats = u.generator_forward(state, g_params, images, rng)
                loss, parts = u.generator_head(state, logits, images, labels, adversarial)
                return loss, (batch_stats, parts)

            (_, (batch_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.g_params)
            state, norm = u.apply_generator_grads(state, grads, batch_stats)
            metrics = {**metrics, **norm}
        else:
            logits, _ = u.generator_forward(state, state.g_params, images, rng)
            probs = jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))
            state, metrics = u.adversary_update(state, images, labels, probs)
        return u.finish(state, metrics, advances(sub))

    return step


def make_phase2_iteration(
    networks: Networks,
    config: ml_collections.ConfigDict,
    *,
    d_steps: int,
    axis_name: str = AXIS,
):
    """A whole phase-2 iteration with one generator forward pass: ``d_steps`` adversary
    updates, then one generator update (``phase2.g_steps == 1``).

    Returns ``iteration(state, batch, sub) -> (state, metrics)``, shaped like the train steps
(``sub`` = 0, the only update of the iteration, keys the dropout), to be pmapped over
``axis_name``.
    The adversary updates and the generator update all use G's output for the same weights;
    the separate steps (``make_train_step``) compute it once per update, where the only thing
    that differs is the dropout sample. Here the A updates see the fake map G's update
    differentiates (as pix2pix-style GAN loops do), and G's loss uses the updated A (Eq. 5).
    G's backward is the VJP of that one forward, so the iteration costs one G forward less per
    A update. Metrics are those of the separate steps (A's from its last update).
    """
    if d_steps < 1:
        raise ValueError(f"d_steps must be >= 1; got {d_steps}")
    u = _Updates(networks, config, axis_name)

    def iteration(state: TrainState, batch: dict[str, jax.Array], sub: jax.Array):
        images, labels = batch["image"], batch["label"]
        rng = u.rng(state, sub)
        logits, g_vjp, batch_stats = jax.vjp(
            lambda p: u.generator_forward(state, p, images, rng), state.g_params, has_aux=True)
        probs = jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))

        metrics: dict[str, Any] = {}
        for _ in range(d_steps):  # unrolled: a lax.scan here cost 430 ms per DeepLabv3 iteration
            state, metrics = u.adversary_update(state, images, labels, probs)

        (_, parts), d_logits = jax.value_and_grad(
            lambda lg: u.generator_head(state, lg, images, labels, adversarial=True),
            has_aux=True)(logits)
        (grads,) = g_vjp(d_logits)
        state, norm = u.apply_generator_grads(state, grads, batch_stats)
        return u.finish(state, {**metrics, **parts, **norm}, 1)

    return iteration
