"""G's loss terms (training/loss_terms.py): the table's sum against the hand-written formula,
the semi-supervised gate, your own terms parsed, checked and reaching G's gradient."""

import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.core import config as config_lib
from ssgan_jax.core import parallel
from ssgan_jax.core.errors import ConfigError
from ssgan_jax.training import loss_terms, losses, steps
from ssgan_jax.training import state as state_lib

from ..train_fixtures import tiny_config
from .step_fixtures import make_batch, make_networks, make_state, sgd_networks, split_over


@pytest.fixture
def my_terms(tmp_path, monkeypatch):
    """A module outside the package with three terms: G's mean squared logit (logging its max
    beside it), its logits' mean squared distance from 1, and a term that is always zero."""
    folder = tmp_path / "my_losses_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "terms.py").write_text(textwrap.dedent("""
        import jax.numpy as jnp

        def square_logits(inputs):
            return jnp.mean(inputs.logits ** 2), {"logit_max": jnp.max(inputs.logits)}

        def logits_from_one(inputs):
            return jnp.mean((inputs.logits - 1.0) ** 2)

        def zero(inputs):
            return 0.0 * jnp.sum(inputs.logits)

        NOT_A_FUNCTION = 3

        def loss_d(inputs):  # the name of A's logged loss
            return 0.0

        def ce(inputs):  # a built-in term's name
            return 0.0
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_losses_pkg.terms"
    for name in [m for m in sys.modules if m.startswith("my_losses_pkg")]:
        del sys.modules[name]


def _inputs(config, n=2, unlabeled=0, phase2_step=0, seed=0):
    rng = np.random.default_rng(seed)
    total = n + unlabeled
    logits = jnp.asarray(rng.normal(size=(total, 8, 8, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, size=(n, 8, 8)), jnp.int32)
    fake = jnp.asarray(rng.normal(size=(total, 2, 2)), jnp.float32)

    def ce(lg, lb):
        return losses.masked_cross_entropy(lg, lb, config.loss.ignore_label)

    return loss_terms.Inputs(logits=logits, labels=labels, images=jnp.zeros((total, 8, 8, 3)),
                             n=n, fake=fake, phase2_step=jnp.asarray(phase2_step),
                             cross_entropy=ce, config=config, axis_name="batch")


def _sum(config, inputs, adversarial, semi):
    terms = loss_terms.active(loss_terms.table(config), config, adversarial, semi)
    if semi:  # the semi term psums over the device axis: run it under a one-device vmap
        return jax.vmap(lambda _: loss_terms.generator_loss(terms, inputs),
                        axis_name="batch")(jnp.zeros(1))
    return loss_terms.generator_loss(terms, inputs)


def test_builtin_terms_are_the_papers_loss():
    config = config_lib.get_config()
    config.loss.lam = 0.25
    x = _inputs(config)
    ce = losses.masked_cross_entropy(x.logits, x.labels)
    loss, metrics = _sum(config, x, adversarial=False, semi=False)
    assert set(metrics) == {"ce"} and float(loss) == pytest.approx(float(ce), rel=1e-6)
    for form in ("minimax", "non_saturating"):
        config.loss.adv_form = form
        loss, metrics = _sum(config, x, adversarial=True, semi=False)
        adv = losses.generator_adversarial_loss(x.fake, form)
        assert set(metrics) == {"ce", "adv", "loss_g"}
        assert float(metrics["adv"]) == pytest.approx(float(adv), rel=1e-6)
        # Eq. 5 by hand: mce + lam * adv
        assert float(loss) == pytest.approx(float(ce) + 0.25 * float(adv), rel=1e-6)
        assert float(metrics["loss_g"]) == pytest.approx(float(loss), rel=1e-6)


@pytest.mark.parametrize("phase2_step,on", [(4, False), (5, True)])
def test_semi_terms_and_the_self_training_gate(phase2_step, on):
    config = config_lib.get_config()
    config.loss.lam, config.semi.lam_adv_unlabeled, config.semi.lam_semi = 0.5, 0.2, 0.3
    config.semi.start_step, config.semi.mask_threshold = 5, 0.5
    x = _inputs(config, n=2, unlabeled=3, phase2_step=phase2_step, seed=1)
    loss, metrics = _sum(config, x, adversarial=True, semi=True)
    loss, metrics = float(loss[0]), {k: float(v[0]) for k, v in metrics.items()}
    ce = float(losses.masked_cross_entropy(x.logits[:2], x.labels))
    adv = float(losses.generator_adversarial_loss(x.fake[:2]))
    adv_u = float(losses.generator_adversarial_loss(x.fake[2:]))
    # the self-training target by hand: G's argmax where sigmoid(A) > 0.5 over the cell
    # that covers the pixel (2x2 cells of 4x4 pixels)
    cells = np.asarray(jax.nn.sigmoid(x.fake[2:])) > 0.5
    mask = np.repeat(np.repeat(cells, 4, 1), 4, 2)
    target = np.where(mask, np.argmax(np.asarray(x.logits[2:]), -1), 255)
    semi_ce = float(losses.masked_cross_entropy(x.logits[2:], jnp.asarray(target)))
    assert metrics["semi_ce"] == pytest.approx(semi_ce, rel=1e-5)
    assert metrics["semi_mask_share"] == pytest.approx(mask.mean(), rel=1e-6)
    assert metrics["semi_on"] == float(on)
    assert metrics["d_out_unlabeled"] == pytest.approx(
        float(jnp.mean(jax.nn.sigmoid(x.fake[2:]))), rel=1e-6)
    expected = ce + 0.5 * adv + 0.2 * adv_u + (0.3 * semi_ce if on else 0.0)
    assert loss == pytest.approx(expected, rel=1e-5)
    config.semi.lam_semi = 0.0  # off: no self-training term at all
    _, metrics = _sum(config, x, adversarial=True, semi=True)
    assert "semi_ce" not in metrics and "adv_unlabeled" in metrics


def test_your_own_terms_are_parsed_and_checked(my_terms):
    config = config_lib.get_config()
    config.loss.extra_terms = (f"{my_terms}:square_logits=0.5", f"{my_terms}:zero")
    loss_terms.check(config)
    x = _inputs(config)
    loss, metrics = _sum(config, x, adversarial=False, semi=False)
    ce = float(losses.masked_cross_entropy(x.logits, x.labels))
    square = float(jnp.mean(x.logits ** 2))
    assert float(metrics["square_logits"]) == pytest.approx(square, rel=1e-6)
    assert float(metrics["logit_max"]) == pytest.approx(float(jnp.max(x.logits)))
    assert float(metrics["zero"]) == 0.0
    assert float(loss) == pytest.approx(ce + 0.5 * square, rel=1e-6)
    assert float(metrics["loss_g"]) == pytest.approx(float(loss), rel=1e-6)
    assert [name for name, _ in loss_terms.extra(config)] == ["square_logits", "zero"]
    assert loss_terms.extra_names(config) == ("square_logits", "zero")  # nothing imported

    bad = {
        f"{my_terms}:square_logits=half": "is not a number",
        f"{my_terms}:square_logits=nan": "is not a number",
        f"{my_terms}:missing": "has no attribute 'missing'",
        "no_such_package_xyz.terms:f": "cannot import module",
        "square_logits": "is not an importable 'module:function'",
        f"{my_terms}:NOT_A_FUNCTION": "is not a function",
    }
    for entry, message in bad.items():
        config.loss.extra_terms = (entry,)
        with pytest.raises(ConfigError, match=message):
            loss_terms.check(config)
    for taken in ((f"{my_terms}:zero", f"{my_terms}:zero"), (f"{my_terms}:ce",),
                  (f"{my_terms}:loss_d",)):
        config.loss.extra_terms = taken
        with pytest.raises(ConfigError, match="another term already uses"):
            loss_terms.check(config)


def test_your_own_term_reaches_gs_gradient(tmp_path, my_terms):
    """A step with a zero-valued term equals the step without it; a real term changes G's
    update by its own gradient, and its value is in the step's metrics."""
    config = tiny_config(tmp_path, "fcn8s_vgg16")  # the fastest to compile; any G will do
    batch = make_batch(n=2)
    nets = sgd_networks(make_networks(config, 1))
    state = state_lib.fresh_optimizers(make_state(config, nets), nets)
    devices = jax.devices()[:1]

    def step(extra):
        config.loss.extra_terms = extra
        fn = parallel.pmap_step(steps.make_train_step(nets, config, 1), devices=devices)
        new, metrics = fn(state, split_over(batch, 1))
        return jax.device_get(new.g_params), jax.device_get(metrics)

    plain, m_plain = step(())
    zero, m_zero = step((f"{my_terms}:zero=3.0",))
    # FCN-8s's score layers start at zero (its paper's init), where a squared logit has no
    # gradient: the distance from 1 has
    with_term, m_term = step((f"{my_terms}:logits_from_one=10.0",))
    leaves = lambda t: jax.tree.leaves(t)  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(leaves(plain), leaves(zero), strict=True))
    assert "loss_g" not in m_plain and float(m_zero["loss_g"]) == pytest.approx(
        float(m_plain["ce"]), rel=1e-6)
    assert max(float(np.abs(a - b).max())
               for a, b in zip(leaves(plain), leaves(with_term), strict=True)) > 1e-6
    assert float(m_term["loss_g"]) == pytest.approx(
        float(m_term["ce"]) + 10.0 * float(m_term["logits_from_one"]), rel=1e-5)
