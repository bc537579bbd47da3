"""The train state and the pure step functions of both phases (PAPER.md sections 5-6).

``TrainState`` is one pytree for the whole run (both networks, both optimizers, the step and
the root rng), so phase 1, phase 2 and every checkpoint share one structure.
``make_train_step`` builds one whole iteration of a phase (it alone advances ``state.step``);
``pmap_step`` maps it over the local devices (axis ``AXIS``) with the state held once on every
device (``in_axes=None``, ``out_axes=None``, as flax's imagenet example does); gradients and
BatchNorm statistics are averaged over all devices of all processes inside the step.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ssgan_jax import losses
from ssgan_jax.models import build_adversary, build_generator
from ssgan_jax.rescaling import epsilon_rescale

AXIS = "batch"


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


class PhaseOptimizers(NamedTuple):
    """The optimizers of one phase, and G's learning-rate schedule (for logging)."""

    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    g_schedule: optax.Schedule


def phase_optimizers(config: ml_collections.ConfigDict, phase: int) -> PhaseOptimizers:
    """G's Adam and A's SGD of phase 1 or 2 (PAPER.md section 6)."""
    opt = config.optim
    p = config.phase1 if phase == 1 else config.phase2
    g_tx = make_optimizer("adam", p.lr, p.end_lr, p.steps, weight_decay=opt.weight_decay,
                          clip_norm=opt.grad_clip_norm, adam_eps=opt.adam_eps)
    d_tx = make_optimizer(
        "sgd", config.phase2.d_lr, config.phase2.d_end_lr, config.phase2.steps,
        momentum=config.phase2.d_momentum, weight_decay=opt.d_weight_decay,
        clip_norm=opt.d_grad_clip_norm,
    )
    return PhaseOptimizers(g_tx, d_tx, optax.linear_schedule(p.lr, p.end_lr, max(int(p.steps), 1)))


def _variables(params, batch_stats) -> dict[str, Any]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


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
    g_vars = networks.generator.init(g_key, images, train=False)
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


def local_mesh() -> Mesh:
    """This process's devices on one axis named ``AXIS``: the mesh ``jax.pmap`` runs on."""
    return Mesh(np.asarray(jax.local_devices()), (AXIS,))


def on_devices(tree):
    """``tree`` (host arrays) copied to every local device, as a pmapped step with
    ``in_axes=None`` takes it and, with ``out_axes=None``, returns it. Placing the state so
    before the first step keeps that step's input layout equal to its later inputs (its own
    outputs): one compilation per phase, not two."""
    return jax.device_put(tree, NamedSharding(local_mesh(), PartitionSpec()))


def shard_batch(tree):
    """``[local_devices, ...]`` host arrays split over the local devices along axis 0, as a
    pmapped step with ``in_axes=0`` takes them."""
    return jax.device_put(tree, NamedSharding(local_mesh(), PartitionSpec(AXIS)))


def prefetch(batches: Iterator[Any], size: int = 2) -> Iterator[Any]:
    """Yield ``shard_batch(b)`` for each ``b`` of ``batches``, keeping ``size`` batches in
    flight: the host-to-device copies overlap the running step."""
    queue: collections.deque = collections.deque()
    for batch in batches:
        queue.append(shard_batch(batch))
        if len(queue) > size - 1:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def pmap_step(fn, *, donate: bool = False, devices=None):
    """``fn(state, batch) -> (state, metrics)`` pmapped over ``AXIS`` the way training runs it:
    the state is one copy on every device (``in_axes=None``, ``out_axes=None``; the step keeps
    it identical on all devices by averaging gradients and BatchNorm statistics), the batch
    is split along its leading axis and the metrics (averaged over the devices) come back
    once; ``donate`` lets the step reuse the state's buffers."""
    return jax.pmap(fn, axis_name=AXIS, in_axes=(None, 0), out_axes=(None, None),
                    donate_argnums=(0,) if donate else (), devices=devices)


def pmap_eval(fn):
    """``fn(variables, batch)`` pmapped over ``AXIS`` with the variables one copy on every
    device (``in_axes=None``) and the batch and outputs split along their leading axis."""
    return jax.pmap(fn, axis_name=AXIS, in_axes=(None, 0))


def fresh_optimizers(state: TrainState, networks: Networks) -> TrainState:
    """Re-create both optimizer states (the paper resets them at the phase boundary)."""
    return state.replace(
        g_opt=networks.g_tx.init(state.g_params), d_opt=networks.d_tx.init(state.d_params)
    )


def _device_mean(tree, axis_name: str):
    """``pmean`` over the devices; the identity on one device, where XLA:CPU would still copy
    every gradient through an all-reduce (docs/PERFORMANCE.md)."""
    return tree if jax.lax.psum(1, axis_name) == 1 else jax.lax.pmean(tree, axis_name)


class _Updates:
    """The pieces every step is made of, for one phase's networks and one config: G's forward,
    the loss heads of both networks and the two optimizer updates. Pure functions of their
    arguments; the step builders below only wire them together."""

    def __init__(self, networks: Networks, config: ml_collections.ConfigDict, axis_name: str):
        self.nets, self.loss_cfg, self.axis_name = networks, config.loss, axis_name
        self.eps = config.rescaling.eps
        self.bn_train = config.model.bn_mode == "train"
        self.semi, self.phase1_steps = config.semi, config.phase1.steps

    def rng(self, state: TrainState, update: int) -> jax.Array:
        """The dropout key of update ``update`` (0, 1, ...) of this iteration on this device:
        the root folded with the step, the update's index and the device's index."""
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        rng = jax.random.fold_in(rng, update)
        return jax.random.fold_in(rng, jax.lax.axis_index(self.axis_name))

    def generator_forward(self, state, params, images, rng):
        """G(images) in train mode -> (logits, G's new BatchNorm statistics)."""
        out = self.nets.generator.apply(
            _variables(params, state.g_batch_stats), images, train=True,
            rngs={"dropout": rng}, mutable=["batch_stats"] if self.bn_train else False,
        )
        logits, updates = out if self.bn_train else (out, {})
        return logits, updates.get("batch_stats", state.g_batch_stats)

    def cross_entropy(self, logits, labels):
        """This device's share of mce over the labelled pixels of all devices (Eq. 3): the
        pmean of the per-device values is the global mean."""
        devices = jax.lax.psum(1, self.axis_name)
        labelled = jax.lax.psum(jnp.sum(labels != self.loss_cfg.ignore_label), self.axis_name)
        ce_sum, _ = losses.cross_entropy_sum(logits, labels, self.loss_cfg.ignore_label)
        return ce_sum * devices / jnp.maximum(labelled, 1).astype(jnp.float32)

    def semi_generator_head(self, state, logits, images, labels, n):
        """(loss_g, parts) of G's logits for ``images`` = n labelled then unlabelled ones:
        mce + lam * adv on the labelled, + semi.lam_adv_unlabeled * adv on the unlabelled,
        + semi.lam_semi * the self-training cross-entropy on confident unlabelled pixels."""
        cfg, semi = self.loss_cfg, self.semi
        ce = self.cross_entropy(logits[:n], labels)
        fake = self.nets.adversary.apply(_variables(state.d_params, state.d_batch_stats), images,
                                         jax.nn.softmax(logits, axis=-1))
        loss, adv = losses.generator_loss(ce, fake[:n], cfg.lam, cfg.adv_form)
        adv_u = losses.generator_adversarial_loss(fake[n:], cfg.adv_form)
        loss = loss + semi.lam_adv_unlabeled * adv_u
        parts = {"ce": ce, "adv": adv, "adv_unlabeled": adv_u,
                 "d_out_unlabeled": jnp.mean(jax.nn.sigmoid(fake[n:]))}
        if semi.lam_semi > 0:
            h, w = logits.shape[1:3]
            mask = losses.confidence_mask(jax.lax.stop_gradient(fake[n:]), h, w,
                                          semi.mask_threshold)
            pseudo = jnp.argmax(jax.lax.stop_gradient(logits[n:]), axis=-1)
            target = jnp.where(mask, pseudo, cfg.ignore_label)
            semi_ce = self.cross_entropy(logits[n:], target)
            on = (state.step - self.phase1_steps) >= semi.start_step
            loss = loss + jnp.where(on, semi.lam_semi, 0.0) * semi_ce
            inside = jax.lax.psum(jnp.sum(mask), self.axis_name)
            pixels = jax.lax.psum(mask.size, self.axis_name)
            parts.update({"semi_ce": semi_ce, "semi_mask_share": inside / pixels,
                          "semi_on": on.astype(jnp.float32)})
        parts["loss_g"] = loss
        return loss, parts

    def generator_head(self, state, logits, images, labels, adversarial):
        """(loss_g, parts) of G's logits: mce (Eq. 3), plus lam * adv (Eq. 5) in phase 2 with
        ``state``'s adversary."""
        ce = self.cross_entropy(logits, labels)
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
        ), {"g_grad_norm": optax.tree.norm(grads)}

    def generator_update(self, state, images, labels, adversarial, update):
        """One G update with its own forward pass (Eq. 3, or Eq. 5 when ``adversarial``)."""
        rng = self.rng(state, update)

        def loss_fn(g_params):
            logits, batch_stats = self.generator_forward(state, g_params, images, rng)
            loss, parts = self.generator_head(state, logits, images, labels, adversarial)
            return loss, (batch_stats, parts)

        (_, (batch_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.g_params)
        state, norm = self.apply_generator_grads(state, grads, batch_stats)
        return state, {**metrics, **norm}

    def generator_probabilities(self, state, images, update):
        """G's softmax maps for the adversary (a fresh forward, no gradient to G)."""
        logits, _ = self.generator_forward(state, state.g_params, images, self.rng(state, update))
        return jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))

    def adversary_update(self, state, images, labels, probs, unlabeled=None):
        """One A update (Eq. 6-7) on G's probabilities ``probs`` (no gradient to G): the real
        map is their epsilon-rescaling (Eq. 1-2); both maps share one image-branch pass.
        ``unlabeled`` = (images, G's probabilities) adds fake pairs of unlabelled images."""
        real = epsilon_rescale(probs, labels, self.eps, self.loss_cfg.ignore_label)
        both_maps = jnp.concatenate([real, probs])
        n = images.shape[0]

        def loss_fn(d_params):
            variables = _variables(d_params, state.d_batch_stats)
            out = self.nets.adversary.apply(variables, images, both_maps)
            real_logits, fake_logits = out[:n], out[n:]
            if unlabeled is not None:
                fake_logits = jnp.concatenate(
                    [fake_logits, self.nets.adversary.apply(variables, *unlabeled)])
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
            "d_grad_norm": optax.tree.norm(grads),
        }

    def metrics(self, metrics):
        """The metrics averaged over the devices (identical on every device)."""
        return jax.lax.pmean(
            {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}, self.axis_name)


Step = Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]


def make_train_step(
    networks: Networks,
    config: ml_collections.ConfigDict,
    phase: int,
    *,
    axis_name: str = AXIS,
) -> Step:
    """One training iteration of ``phase``: ``step(state, batch) -> (state, metrics)``, to be
    pmapped over ``axis_name`` (``pmap_step``); ``state.step`` grows by one.

    batch = {"image": [B, H, W, 3] f32, "label": [B, H, W] i32} per device. Gradients are
    averaged over all devices of all processes.

    * phase 1, or phase 2 with ``loss.lam == 0``: one G update on mce (Eq. 3).
    * phase 2: ``phase2.d_steps`` A updates, loss_d = bce(1, A(x, v)) + bce(0, A(x, g(x)))
      (Eq. 6-7) with v the epsilon-rescaled real map built from G's own probabilities
      (Eq. 1-2); then ``phase2.g_steps`` G updates on loss_g = mce + lam * adv (Eq. 5) with
      the updated A. With ``phase2.share_generator_forward`` (needs ``g_steps == 1``) G's
      forward pass runs once and feeds every update (``_fused_phase2``); else each update
      runs its own forward (its own dropout sample). Metrics: A's are those of its last update.
    """
    u = _Updates(networks, config, axis_name)
    adversarial = phase == 2 and config.loss.lam > 0
    d_steps, g_steps = config.phase2.d_steps, config.phase2.g_steps
    if adversarial and (d_steps < 1 or g_steps < 1):
        raise ValueError(f"phase2.d_steps and phase2.g_steps must be >= 1; got {d_steps}, "
                         f"{g_steps}")

    semi = adversarial and config.semi.unlabeled_batch_size > 0
    if semi and not config.phase2.share_generator_forward:
        raise ValueError("semi-supervised phase 2 is the fused iteration: set "
                         "phase2.share_generator_forward=True (and phase2.g_steps=1)")

    def step(state: TrainState, batch: dict[str, jax.Array]):
        images, labels = batch["image"], batch["label"]
        if semi:
            state, metrics = _fused_semi(u, state, images, labels, batch["unlabeled"], d_steps)
        elif not adversarial:
            state, metrics = u.generator_update(state, images, labels, False, update=0)
        elif config.phase2.share_generator_forward:
            if g_steps != 1:
                raise ValueError("phase2.share_generator_forward needs phase2.g_steps == 1")
            state, metrics = _fused_phase2(u, state, images, labels, d_steps)
        else:
            metrics = {}
            for i in range(d_steps):  # unrolled, as in the fused iteration
                probs = u.generator_probabilities(state, images, update=i)
                state, m = u.adversary_update(state, images, labels, probs)
                metrics.update(m)
            for j in range(g_steps):
                state, m = u.generator_update(state, images, labels, True, update=d_steps + j)
                metrics.update(m)
        return state.replace(step=state.step + 1), u.metrics(metrics)

    return step


def _fused_phase2(u: _Updates, state: TrainState, images, labels, d_steps: int):
    """A phase-2 iteration with one G forward pass: ``d_steps`` A updates, then one G update.

    The separate updates compute G's output once per update, where the only thing that
    differs is the dropout sample. Here the A updates see the fake map G's update
    differentiates (as pix2pix-style GAN loops do), and G's loss uses the updated A (Eq. 5).
    G's backward is the VJP of that one forward, so the iteration costs one G forward less
    per A update. The d_steps loop is unrolled (a ``lax.scan`` measured slower on XLA:CPU,
    docs/PERFORMANCE.md).
    """
    logits, g_vjp, batch_stats = jax.vjp(
        lambda p: u.generator_forward(state, p, images, u.rng(state, 0)), state.g_params,
        has_aux=True)
    probs = jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))
    metrics: dict[str, Any] = {}
    for _ in range(d_steps):
        state, metrics = u.adversary_update(state, images, labels, probs)
    (_, parts), d_logits = jax.value_and_grad(
        lambda lg: u.generator_head(state, lg, images, labels, adversarial=True),
        has_aux=True)(logits)
    (grads,) = g_vjp(d_logits)
    state, norm = u.apply_generator_grads(state, grads, batch_stats)
    return state, {**metrics, **parts, **norm}


def _fused_semi(u: _Updates, state: TrainState, images, labels, unlabeled, d_steps: int):
    """``_fused_phase2`` with unlabelled images (issue 18): G's one forward pass takes the
    labelled and the unlabelled images together (BatchNorm statistics over both); A's updates
    judge the labelled pairs, real and fake, and (``semi.adversary_unlabeled``) the unlabelled
    fakes; G's update adds the adversarial term on the unlabelled images and, optionally,
    self-training on their confident pixels (``_Updates.semi_generator_head``)."""
    n = images.shape[0]
    x = jnp.concatenate([images, unlabeled])
    logits, g_vjp, batch_stats = jax.vjp(
        lambda p: u.generator_forward(state, p, x, u.rng(state, 0)), state.g_params,
        has_aux=True)
    probs = jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))
    fakes = (unlabeled, probs[n:]) if u.semi.adversary_unlabeled else None
    metrics: dict[str, Any] = {}
    for _ in range(d_steps):
        state, metrics = u.adversary_update(state, images, labels, probs[:n], fakes)
    (_, parts), d_logits = jax.value_and_grad(
        lambda lg: u.semi_generator_head(state, lg, x, labels, n), has_aux=True)(logits)
    (grads,) = g_vjp(d_logits)
    state, norm = u.apply_generator_grads(state, grads, batch_stats)
    return state, {**metrics, **parts, **norm}


UPDATES = ("generator", "adversary")


def make_update(
    which: str,
    networks: Networks,
    config: ml_collections.ConfigDict,
    *,
    adversarial: bool = True,
    axis_name: str = AXIS,
) -> Step:
    """A single G or A update as ``update(state, batch) -> (state, metrics)``, which leaves
    ``state.step`` alone: the benchmark's per-update rows and tests that look inside an
    iteration. Training runs ``make_train_step``."""
    if which not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}; got {which!r}")
    u = _Updates(networks, config, axis_name)

    def update(state: TrainState, batch: dict[str, jax.Array]):
        images, labels = batch["image"], batch["label"]
        if which == "generator":
            state, metrics = u.generator_update(state, images, labels, adversarial, update=0)
        else:
            probs = u.generator_probabilities(state, images, update=0)
            state, metrics = u.adversary_update(state, images, labels, probs)
        return state, u.metrics(metrics)

    return update
