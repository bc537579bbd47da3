"""The pure step functions of both phases (METHOD.md sections 5-6).

``make_train_step`` builds one whole iteration of a phase (it alone advances ``state.step``);
``parallel.pmap_step`` maps it over the local devices (axis ``AXIS``) with the state held once
on every device (``in_axes=None``, ``out_axes=None``, as flax's imagenet example does);
gradients and BatchNorm statistics are averaged over all devices of all processes inside the
step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ssgan_jax.core import config as config_lib
from ssgan_jax.core.parallel import AXIS
from ssgan_jax.models import canvas, registry
from ssgan_jax.training import loss_terms, losses
from ssgan_jax.training.rescaling import epsilon_rescale, rescale_own_argmax
from ssgan_jax.training.state import Networks, TrainState


def _variables(params, batch_stats) -> dict[str, Any]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


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
        self.config = config
        table = loss_terms.table(config)
        self.terms = {(adv, semi): loss_terms.active(table, config, adv, semi)
                      for adv, semi in ((False, False), (True, False), (True, True))}
        self.eps = config.rescaling.eps
        self.rescale_fake = config.adversary.rescale_fake
        self.bn_train = config.model.bn_mode == "train"
        self.semi, self.phase1_steps = config.semi, config.phase1.steps
        weights = tuple(config.loss.class_weights)
        self.class_weights = jnp.asarray(weights, jnp.float32) if weights else None

    def rng(self, state: TrainState, update: int) -> jax.Array:
        """The dropout key of update ``update`` (0, 1, ...) of this iteration on this device:
        the root folded with the step, the update's index and the device's index."""
        rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        rng = jax.random.fold_in(rng, update)
        return jax.random.fold_in(rng, jax.lax.axis_index(self.axis_name))

    def fake_map(self, probs, labels=None):
        """The map A judges as G's (METHOD.md sections 3-4): G's probabilities, or with
        ``adversary.rescale_fake`` their epsilon-rescaling against G's own argmax (gradient
        kept; ``labels``' ignore pixels keep G's map, as in the real map)."""
        if not self.rescale_fake:
            return probs
        return rescale_own_argmax(probs, self.eps, labels, self.loss_cfg.ignore_label)

    def generator_forward(self, state, params, images, rng, sizes=None):
        """G(images) in train mode -> (logits, G's new BatchNorm statistics). ``sizes``: each
        crop's own image region (``models.canvas``; a crop larger than its scaled image is
        padded): the image-level pooling and the final upsampling follow it (in training the
        convolutions still read the padding, METHOD.md section 6)."""
        out = registry.apply(
            self.nets.generator, _variables(params, state.g_batch_stats), images, train=True,
            sizes=sizes,
            rngs={"dropout": rng}, mutable=["batch_stats"] if self.bn_train else False,
        )
        logits, updates = out if self.bn_train else (out, {})
        return logits, updates.get("batch_stats", state.g_batch_stats)

    def cross_entropy(self, logits, labels):
        """This device's share of mce over the labelled pixels of all devices (Eq. 3): the
        pmean of the per-device values is the global mean. With ``loss.class_weights`` the
        pixels are weighted by their class (``losses.cross_entropy_sum``)."""
        devices = jax.lax.psum(1, self.axis_name)
        ce_sum, weight = losses.cross_entropy_sum(logits, labels, self.loss_cfg.ignore_label,
                                                  self.class_weights)
        total = jax.lax.psum(weight, self.axis_name)
        return ce_sum * devices / jnp.where(total > 0, total, 1.0)

    def generator_head(self, state, logits, images, labels, adversarial, n=None):
        """(loss_g, metrics) of G's logits for ``images``, the first ``n`` (all by default)
        labelled: the terms of ``loss_terms`` (mce, Eq. 3; in phase 2 lam * adv, Eq. 5, with
        ``state``'s adversary; semi-supervised, the unlabelled images' terms; your own)."""
        n = images.shape[0] if n is None else n
        semi = adversarial and n < images.shape[0]
        fake = None
        if adversarial:
            probs = jax.nn.softmax(logits, axis=-1)
            maps = (jnp.concatenate([self.fake_map(probs[:n], labels),
                                     self.fake_map(probs[n:])])
                    if semi else self.fake_map(probs, labels))
            fake = self.nets.adversary.apply(_variables(state.d_params, state.d_batch_stats),
                                             images, maps)
        inputs = loss_terms.Inputs(
            logits=logits, labels=labels, images=images, n=n, fake=fake,
            phase2_step=state.step - self.phase1_steps, cross_entropy=self.cross_entropy,
            config=self.config, axis_name=self.axis_name)
        return loss_terms.generator_loss(self.terms[(adversarial, semi)], inputs)

    def apply_generator_grads(self, state, grads, batch_stats):
        grads = _device_mean(grads, self.axis_name)
        updates, g_opt = self.nets.g_tx.update(grads, state.g_opt, state.g_params)
        return state.replace(
            g_params=optax.apply_updates(state.g_params, updates), g_opt=g_opt,
            g_batch_stats=batch_stats if self.bn_train else state.g_batch_stats,
        ), {"g_grad_norm": optax.tree.norm(grads)}

    def generator_update(self, state, images, labels, adversarial, update, sizes=None):
        """One G update with its own forward pass (Eq. 3, or Eq. 5 when ``adversarial``)."""
        rng = self.rng(state, update)

        def loss_fn(g_params):
            logits, batch_stats = self.generator_forward(state, g_params, images, rng, sizes)
            loss, parts = self.generator_head(state, logits, images, labels, adversarial)
            return loss, (batch_stats, parts)

        (_, (batch_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.g_params)
        state, norm = self.apply_generator_grads(state, grads, batch_stats)
        return state, {**metrics, **norm}

    def generator_probabilities(self, state, images, update, sizes=None):
        """G's softmax maps for the adversary (a fresh forward, no gradient to G)."""
        logits, _ = self.generator_forward(state, state.g_params, images, self.rng(state, update),
                                           sizes)
        return jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))

    def adversary_update(self, state, images, labels, probs, unlabeled=None):
        """One A update (Eq. 6-7) on G's probabilities ``probs`` (no gradient to G): the real
        map is their epsilon-rescaling (Eq. 1-2); both maps share one image-branch pass.
        ``unlabeled`` = (images, G's probabilities) adds fake pairs of unlabelled images."""
        real = epsilon_rescale(probs, labels, self.eps, self.loss_cfg.ignore_label)
        both_maps = jnp.concatenate([real, self.fake_map(probs, labels)])
        n = images.shape[0]

        def loss_fn(d_params):
            variables = _variables(d_params, state.d_batch_stats)
            out = self.nets.adversary.apply(variables, images, both_maps)
            real_logits, fake_logits = out[:n], out[n:]
            if unlabeled is not None:
                u_images, u_probs = unlabeled
                fake_logits = jnp.concatenate([fake_logits, self.nets.adversary.apply(
                    variables, u_images, self.fake_map(u_probs))])
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

    batch = {"image": [B, H, W, 3] f32, "label": [B, H, W] i32, optionally "sizes" [B, 2] i32
    (each crop's image region, ``models.canvas``)} per device. Gradients are
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
    adversarial = phase == 2 and config_lib.adversary_on(config)
    d_steps, g_steps = config.phase2.d_steps, config.phase2.g_steps
    if adversarial and (d_steps < 1 or g_steps < 1):
        raise ValueError(f"phase2.d_steps and phase2.g_steps must be >= 1; got {d_steps}, "
                         f"{g_steps}")

    semi = adversarial and config.semi.unlabeled_batch_size > 0
    if semi and not config.phase2.share_generator_forward:
        raise ValueError("semi-supervised phase 2 is the fused iteration: set "
                         "phase2.share_generator_forward=True (and phase2.g_steps=1)")

    def step(state: TrainState, batch: dict[str, jax.Array]):
        images, labels, sizes = batch["image"], batch["label"], batch.get("sizes")
        if semi:
            state, metrics = _fused_semi(u, state, images, labels, batch["unlabeled"], d_steps,
                                         sizes, batch.get("unlabeled_sizes"))
        elif not adversarial:
            state, metrics = u.generator_update(state, images, labels, False, 0, sizes)
        elif config.phase2.share_generator_forward:
            if g_steps != 1:
                raise ValueError("phase2.share_generator_forward needs phase2.g_steps == 1")
            state, metrics = _fused_phase2(u, state, images, labels, d_steps, sizes)
        else:
            metrics = {}
            for i in range(d_steps):  # unrolled, as in the fused iteration
                probs = u.generator_probabilities(state, images, i, sizes)
                state, m = u.adversary_update(state, images, labels, probs)
                metrics.update(m)
            for j in range(g_steps):
                state, m = u.generator_update(state, images, labels, True, d_steps + j, sizes)
                metrics.update(m)
        return state.replace(step=state.step + 1), u.metrics(metrics)

    return step


def _fused_phase2(u: _Updates, state: TrainState, images, labels, d_steps: int, sizes=None):
    """A phase-2 iteration with one G forward pass: ``d_steps`` A updates, then one G update.

    The separate updates compute G's output once per update, where the only thing that
    differs is the dropout sample. Here the A updates see the fake map G's update
    differentiates (as pix2pix-style GAN loops do), and G's loss uses the updated A (Eq. 5).
    G's backward is the VJP of that one forward, so the iteration costs one G forward less
    per A update. The d_steps loop is unrolled (a ``lax.scan`` measured slower on XLA:CPU,
    docs/PERFORMANCE.md).
    """
    logits, g_vjp, batch_stats = jax.vjp(
        lambda p: u.generator_forward(state, p, images, u.rng(state, 0), sizes), state.g_params,
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


def _fused_semi(u: _Updates, state: TrainState, images, labels, unlabeled, d_steps: int,
                sizes=None, unlabeled_sizes=None):
    """``_fused_phase2`` with unlabelled images: G's one forward pass takes the
    labelled and the unlabelled images together (BatchNorm statistics over both); A's updates
    judge the labelled pairs, real and fake, and (``semi.adversary_unlabeled``) the unlabelled
    fakes; G's update adds the adversarial term on the unlabelled images and, optionally,
    self-training on their confident pixels (``loss_terms``)."""
    n = images.shape[0]
    x = jnp.concatenate([images, unlabeled])
    both = None
    if sizes is not None or unlabeled_sizes is not None:
        both = jnp.concatenate([canvas.full(images) if sizes is None else sizes,
                                canvas.full(unlabeled) if unlabeled_sizes is None
                                else unlabeled_sizes])
    logits, g_vjp, batch_stats = jax.vjp(
        lambda p: u.generator_forward(state, p, x, u.rng(state, 0), both), state.g_params,
        has_aux=True)
    probs = jax.lax.stop_gradient(jax.nn.softmax(logits, axis=-1))
    fakes = (unlabeled, probs[n:]) if u.semi.adversary_unlabeled else None
    metrics: dict[str, Any] = {}
    for _ in range(d_steps):
        state, metrics = u.adversary_update(state, images, labels, probs[:n], fakes)
    (_, parts), d_logits = jax.value_and_grad(
        lambda lg: u.generator_head(state, lg, x, labels, True, n), has_aux=True)(logits)
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
        images, labels, sizes = batch["image"], batch["label"], batch.get("sizes")
        if which == "generator":
            state, metrics = u.generator_update(state, images, labels, adversarial, 0, sizes)
        else:
            probs = u.generator_probabilities(state, images, 0, sizes)
            state, metrics = u.adversary_update(state, images, labels, probs)
        return state, u.metrics(metrics)

    return update


def make_probe(networks: Networks, config: ml_collections.ConfigDict, *,
               axis_name: str = AXIS) -> Step:
    """The adversary probe of a phase-2 state (METHOD.md section 5, "Diagnosing the
    adversary"): ``probe(state, batch) -> metrics``, pmapped with ``parallel.pmap_metrics``;
    it changes nothing. G runs in train mode with the dropout
    sample of the iteration's first update, as the step does; A is the state's.

    Metrics (averaged over the devices; the gradients' cosines and norms of the whole global
    batch):
      d_real, d_fake, d_confident: A's mean score on (a) the rescaled ground truth, (b) G's
        map, (c) G's own argmax rescaled against G's map (``diagnostics``);
      entropy: G's mean per-pixel entropy (nats) over the labelled pixels;
      adv_ce_norm_ratio: |lam * d adv / d logits| / |d mce / d logits|, the adversarial
        share of G's gradient at its logits (``loss.lam`` and ``loss.adv_form`` as trained;
        the map A judges as ``adversary.rescale_fake`` says);
      adv_ce_cosine, adv_entropy_cosine: the cosine of d adv / d logits with d mce / d logits
        and with d entropy / d logits (near 1 with the entropy: the adversary's pull is
        sharpening).
    """
    from ssgan_jax.training import diagnostics

    u = _Updates(networks, config, axis_name)
    form = config.loss.adv_form

    def probe(state: TrainState, batch: dict[str, jax.Array]):
        images, labels, sizes = batch["image"], batch["label"], batch.get("sizes")
        logits, _ = u.generator_forward(state, state.g_params, images, u.rng(state, 0), sizes)
        logits = jax.lax.stop_gradient(logits)
        d_vars = _variables(state.d_params, state.d_batch_stats)
        probs = jax.nn.softmax(logits, axis=-1)
        ignore = u.loss_cfg.ignore_label
        maps = jnp.concatenate([epsilon_rescale(probs, labels, u.eps, ignore), probs,
                                rescale_own_argmax(probs, u.eps, labels, ignore)])
        scores = jax.nn.sigmoid(networks.adversary.apply(d_vars, images, maps))
        n = images.shape[0]
        labelled = labels != ignore

        def adversarial(lg):
            fake = networks.adversary.apply(d_vars, images,
                                            u.fake_map(jax.nn.softmax(lg, axis=-1), labels))
            return losses.generator_adversarial_loss(fake, form)

        def entropy(lg):  # this device's share of the global mean
            total, count = diagnostics.entropy_sum(lg, labelled)
            return total * jax.lax.psum(1, axis_name) / jnp.maximum(
                jax.lax.psum(count, axis_name), 1.0)

        ce_grad = jax.grad(lambda lg: u.cross_entropy(lg, labels))(logits)
        adv_grad = jax.grad(adversarial)(logits)
        ent_value, ent_grad = jax.value_and_grad(entropy)(logits)
        with_ce = jax.lax.psum(diagnostics.dot_and_norms(adv_grad, ce_grad), axis_name)
        with_ent = jax.lax.psum(diagnostics.dot_and_norms(adv_grad, ent_grad), axis_name)
        ratio = u.loss_cfg.lam * jnp.sqrt(with_ce[1]) / jnp.maximum(jnp.sqrt(with_ce[2]), 1e-30)
        metrics = {"d_real": jnp.mean(scores[:n]), "d_fake": jnp.mean(scores[n:2 * n]),
                   "d_confident": jnp.mean(scores[2 * n:]), "entropy": ent_value,
                   "adv_ce_norm_ratio": ratio, "adv_ce_cosine": diagnostics.cosine(with_ce),
                   "adv_entropy_cosine": diagnostics.cosine(with_ent)}
        return u.metrics(metrics)

    return probe
