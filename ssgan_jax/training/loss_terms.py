"""G's loss, term by term: every term of loss_g named and weighted in one table
(METHOD.md section 5; README "Your own loss term").

    loss_g = sum over the active terms of weight * term

Built in (``TERMS``, in this order):

- ``ce``: mce over the labelled pixels (Eq. 3), weight 1, every G update;
- ``adv``: G's adversarial term on the labelled images (Eq. 5, ``loss.adv_form``), weight
  ``loss.lam``, phase 2 with the adversary;
- ``adv_unlabeled``: the same on the unlabelled images, weight ``semi.lam_adv_unlabeled``,
  semi-supervised phase 2;
- ``semi_ce``: self-training on the unlabelled pixels A judges real with confidence above
  ``semi.mask_threshold``, weight ``semi.lam_semi`` from phase-2 iteration
  ``semi.start_step`` on (0 before), semi-supervised phase 2 with ``semi.lam_semi > 0``.

Your own terms: ``loss.extra_terms``, entries ``"module:function"`` (weight 1) or
``"module:function=weight"``, added after the built-in ones in every G update of both phases.
A term is ``function(inputs: Inputs) -> value`` or ``-> (value, {name: scalar})``: a scalar to
minimise, this device's share of the loss (a mean over this device's images is right: G's
gradients are averaged over the devices); the dict is logged beside it. It is traced inside
the jit-compiled step, so it must be written in ``jax.numpy``. Each term's value is logged
under its name (a function's name for your own), and ``loss_g`` when more than one term is on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from ssgan_jax.core.errors import ConfigError
from ssgan_jax.core.named import import_attribute
from ssgan_jax.training import losses


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What a term may read, in one G update.

    logits: G's logits [N, H, W, C], the ``n`` labelled images first, then (semi-supervised
      phase 2) the unlabelled ones;
    labels: [n, H, W] int, ``config.loss.ignore_label`` where unlabelled;
    images: [N, H, W, 3] as G saw them;
    n: how many of the N images are labelled;
    fake: A's logits [N, G, G'] on G's maps (the map ``adversary.rescale_fake`` says), or None
      where the update has no adversary (phase 1, ``loss.lam == 0``);
    phase2_step: iterations since phase 2 began (negative in phase 1), a traced int;
    cross_entropy: ``(logits, labels) -> this device's share of the mean over the labelled
      pixels of all devices`` (``loss.class_weights`` applied);
    config: the run's config;
    axis_name: the step's device axis (for a term that sums over the devices).
    """

    logits: jax.Array
    labels: jax.Array
    images: jax.Array
    n: int
    fake: jax.Array | None
    phase2_step: jax.Array
    cross_entropy: Callable[[jax.Array, jax.Array], jax.Array]
    config: ml_collections.ConfigDict
    axis_name: str


@dataclasses.dataclass(frozen=True)
class Term:
    """One term of loss_g: ``fn(inputs)``, weighted by ``weight(inputs)``, on where
    ``active(config, adversarial, semi)`` (decided when the step is built)."""

    fn: Callable[[Inputs], Any]
    weight: Callable[[Inputs], Any]
    active: Callable[[ml_collections.ConfigDict, bool, bool], bool]


def _ce(x: Inputs):
    return x.cross_entropy(x.logits[:x.n], x.labels)


def _adv(x: Inputs):
    return losses.generator_adversarial_loss(x.fake[:x.n], x.config.loss.adv_form)


def _adv_unlabeled(x: Inputs):
    fake = x.fake[x.n:]
    return (losses.generator_adversarial_loss(fake, x.config.loss.adv_form),
            {"d_out_unlabeled": jnp.mean(jax.nn.sigmoid(fake))})


def _semi_ce(x: Inputs):
    """Self-training (README, "Semi-supervised"): G's own argmax as the target where A's
    judgement of the unlabelled image says "real" with confidence (``losses.confidence_mask``)."""
    semi, ignore = x.config.semi, x.config.loss.ignore_label
    h, w = x.logits.shape[1:3]
    mask = losses.confidence_mask(jax.lax.stop_gradient(x.fake[x.n:]), h, w,
                                  semi.mask_threshold)
    pseudo = jnp.argmax(jax.lax.stop_gradient(x.logits[x.n:]), axis=-1)
    value = x.cross_entropy(x.logits[x.n:], jnp.where(mask, pseudo, ignore))
    share = (jax.lax.psum(jnp.sum(mask), x.axis_name)
             / jax.lax.psum(mask.size, x.axis_name))
    return value, {"semi_mask_share": share, "semi_on": _semi_on(x).astype(jnp.float32)}


def _semi_on(x: Inputs):
    return x.phase2_step >= x.config.semi.start_step


def _always(config, adversarial, semi) -> bool:
    return True


# name -> Term, summed in this order; a term's name is also its logged metric
TERMS: dict[str, Term] = {
    "ce": Term(_ce, lambda x: 1.0, _always),
    "adv": Term(_adv, lambda x: x.config.loss.lam, lambda c, adversarial, semi: adversarial),
    "adv_unlabeled": Term(_adv_unlabeled, lambda x: x.config.semi.lam_adv_unlabeled,
                          lambda c, adversarial, semi: semi),
    "semi_ce": Term(_semi_ce,
                    lambda x: jnp.where(_semi_on(x), x.config.semi.lam_semi, 0.0),
                    lambda c, adversarial, semi: semi and c.semi.lam_semi > 0),
}


# what else a step logs (steps.py): a term of your own may not take these names
RESERVED = ("loss_g", "loss_d", "d_acc_real", "d_acc_fake", "d_out_real", "d_out_fake",
            "d_grad_norm", "g_grad_norm", "d_out_unlabeled", "semi_mask_share", "semi_on")


def _entries(config) -> tuple[str, ...]:
    return tuple(v.strip() for v in config.loss.extra_terms if v.strip())


def _parts(entry: str) -> tuple[str, str, str]:
    """("module:function", the name it logs under (the function's), the weight as written) of
    one entry of ``loss.extra_terms``."""
    name, _, weight = entry.rpartition("=") if "=" in entry else (entry, "", "1")
    return name, name.partition(":")[2], weight


def extra_names(config) -> tuple[str, ...]:
    """The names ``loss.extra_terms``' terms log under (their functions' names), read off the
    config without importing them."""
    return tuple(_parts(entry)[1] for entry in _entries(config))


def extra(config) -> list[tuple[str, Term]]:
    """The terms of ``loss.extra_terms``: (name, Term), weight a constant. ConfigError for an
    entry that does not import, is not callable, has a weight that is not a number, or takes
    a built-in term's name."""
    out = []
    for entry in _entries(config):
        name, label, weight_text = _parts(entry)
        try:
            weight = float(weight_text)
        except ValueError:
            weight = float("nan")
        if not math.isfinite(weight):
            raise ConfigError(f"config.loss.extra_terms: the weight of {entry!r} is not a "
                              "number; write 'module:function=0.1'")
        fn = import_attribute(name, "config.loss.extra_terms",
                              f"config.loss.extra_terms: {entry!r} is not an importable "
                              "'module:function' or 'module:function=weight' (e.g. "
                              "'my_package.losses:total_variation=0.05')")
        if not callable(fn):
            raise ConfigError(f"config.loss.extra_terms: {name!r} is not a function")
        if label in TERMS or label in RESERVED or label in (n for n, _ in out):
            raise ConfigError(f"config.loss.extra_terms: {name!r} logs as {label!r}, which "
                              "another term already uses; rename the function")
        out.append((label, Term(fn, lambda x, w=weight: w, _always)))
    return out


def check(config) -> None:
    """ConfigError for a bad entry of ``loss.extra_terms`` (said at load)."""
    extra(config)


def table(config) -> list[tuple[str, Term]]:
    """Every term of ``config``'s loss_g, in summing order: ``TERMS``, then your own
    (imported once here)."""
    return [*TERMS.items(), *extra(config)]


def active(terms: list[tuple[str, Term]], config, adversarial: bool,
           semi: bool) -> list[tuple[str, Term]]:
    """The terms of ``terms`` (``table(config)``) that one G update sums, in order."""
    return [(name, term) for name, term in terms if term.active(config, adversarial, semi)]


def generator_loss(terms: list[tuple[str, Term]], inputs: Inputs):
    """(loss_g, metrics): the weighted sum of ``terms`` on ``inputs``, each term's value (and
    what it logs beside it), and ``loss_g`` when there is more than one term."""
    total, metrics = None, {}
    for name, term in terms:
        out = term.fn(inputs)
        value, logged = out if isinstance(out, tuple) else (out, {})
        weighted = term.weight(inputs) * value
        total = weighted if total is None else total + weighted
        metrics[name] = value
        metrics.update(logged)
    if len(terms) > 1:
        metrics["loss_g"] = total
    return total, metrics
