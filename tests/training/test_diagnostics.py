"""The adversary probe and the layout-judging adversary (METHOD.md sections 3-5): formulas
against hand values, the probe on hand-made maps and judges whose answer is known, and the
probe in training and in ``--mode=diagnose``."""

from __future__ import annotations

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssgan_jax.core import config as config_lib
from ssgan_jax.core import parallel
from ssgan_jax.training import diagnostics, losses, steps
from ssgan_jax.training import state as state_lib
from ssgan_jax.training.rescaling import epsilon_rescale, rescale_own_argmax

# --- formulas ---------------------------------------------------------------------------


def test_entropy_hand_values_and_mask():
    uniform = jnp.zeros((1, 1, 2, 4))  # log 4 nats
    sure = jnp.asarray([[[[50.0, 0, 0, 0], [0, 50.0, 0, 0]]]])  # ~0
    logits = jnp.concatenate([uniform, sure], axis=1)  # [1, 2, 2, 4]
    total, count = diagnostics.entropy_sum(logits)
    np.testing.assert_allclose(total / count, math.log(4) / 2, rtol=1e-5)
    assert float(count) == 4
    mask = jnp.asarray([[[True, True], [False, False]]])
    total, count = diagnostics.entropy_sum(logits, mask)
    np.testing.assert_allclose(total / count, math.log(4), rtol=1e-6)
    assert float(count) == 2
    # u = [1/2, 1/4, 1/4]: H = 1.5 ln 2
    two = jnp.log(jnp.asarray([2.0, 1.0, 1.0])).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(diagnostics.entropy_sum(two)[0], 1.5 * math.log(2), rtol=1e-6)
    total, count = diagnostics.entropy_sum(logits, jnp.zeros((1, 2, 2), bool))
    assert float(total) == 0.0 and float(count) == 0.0


def test_cosine_and_changed_label_share():
    a, b = jnp.asarray([1.0, 0.0, 1.0]), jnp.asarray([1.0, 1.0, 0.0])
    np.testing.assert_allclose(diagnostics.cosine(diagnostics.dot_and_norms(a, b)), 0.5,
                               rtol=1e-6)
    np.testing.assert_allclose(diagnostics.cosine(diagnostics.dot_and_norms(a, -2 * a)), -1.0,
                               rtol=1e-6)
    assert float(diagnostics.cosine(diagnostics.dot_and_norms(a, 0 * a))) == 0.0
    p = np.asarray([[0, 1, 2], [3, 4, 5]])
    r = np.asarray([[0, 1, 9], [3, 9, 9]])
    assert diagnostics.changed_label_share(p, r) == (3, 6)
    assert diagnostics.changed_label_share(p, r, p < 3) == (1, 3)
    with pytest.raises(ValueError, match="shapes"):
        diagnostics.changed_label_share(p, r[:1])


def test_confidence_share_and_the_warning_once():
    assert diagnostics.confidence_share(0.974, 0.479, 0.973) == pytest.approx(0.99798, 1e-4)
    assert diagnostics.confidence_share(0.9, 0.1, 0.1) == 0.0
    assert diagnostics.confidence_share(0.52, 0.50, 0.52) is None  # no gap to explain
    w = diagnostics.ConfidenceWarning(0.9, window=3)
    assert w.update(100, 0.97, 0.48, 0.97) is None
    assert w.update(200, 0.97, 0.48, 0.97) is None
    said = w.update(300, 0.97, 0.48, 0.96)
    assert said and "rewards confidence, not layout" in said and "rescale_fake" in said
    assert w.update(400, 0.97, 0.48, 0.97) is None  # once per run
    quiet = diagnostics.ConfidenceWarning(0.9, window=3)
    assert all(quiet.update(s, 0.97, 0.48, 0.6) is None for s in range(10))  # share 0.25


def test_the_reading_of_a_probe():
    """--mode=diagnose says what the probe means, by the training warning's threshold: the
    paper's adversary at a seed-300 checkpoint of the mechanism study (share 0.96), the
    layout-judging one at the same seed (0.04), and one with no gap to explain."""
    confidence = diagnostics.reading(0.933, 0.087, 0.897, threshold=0.9)
    assert confidence.startswith("reading: A rewards confidence, not layout")
    assert "confidence share 0.96 >= 0.90" in confidence and "rescale_fake" in confidence
    layout = diagnostics.reading(0.878, 0.063, 0.096, threshold=0.9)
    assert layout.startswith("reading: A judges G's labels, not only its confidence")
    assert "confidence share 0.04 < 0.90" in layout
    assert diagnostics.reading(0.52, 0.50, 0.52, threshold=0.9).startswith(
        "reading: A barely separates real from fake")


# --- the layout-judging adversary ------------------------------------------------------


def test_own_argmax_rescaling_hand_values_and_equal_to_the_real_map_where_labels_agree():
    u = jnp.asarray([[0.5, 0.3, 0.2], [0.95, 0.03, 0.02], [0.2, 0.5, 0.3]]).reshape(1, 1, 3, 3)
    v = np.asarray(rescale_own_argmax(u, 0.9))[0, 0]
    np.testing.assert_allclose(v[0], [0.9, 0.06, 0.04], atol=1e-6)  # argmax 0 raised to eps
    np.testing.assert_allclose(v[1], [0.95, 0.03, 0.02], atol=1e-7)  # confident: G's own
    np.testing.assert_allclose(v[2], [0.04, 0.9, 0.06], atol=1e-6)
    # against the real map: equal where G's argmax is the truth, different where it is not;
    # ignore pixels keep G's map in both
    labels = jnp.asarray([[[0, 0, 255]]])
    real = np.asarray(epsilon_rescale(u, labels, 0.9))[0, 0]
    fake = np.asarray(rescale_own_argmax(u, 0.9, labels))[0, 0]
    np.testing.assert_allclose(fake[:2], real[:2], atol=1e-7)
    np.testing.assert_allclose(fake[2], np.asarray(u)[0, 0, 2], atol=1e-7)
    wrong = np.asarray(epsilon_rescale(u, jnp.asarray([[[1, 0, 1]]]), 0.9))[0, 0]
    assert np.abs(wrong[0] - np.asarray(rescale_own_argmax(u, 0.9))[0, 0, 0]).max() > 0.5


def test_gradients_reach_the_logits_through_the_own_argmax_rescaling():
    logits = jax.random.normal(jax.random.key(0), (1, 3, 4, 5))  # no pixel near eps = 0.9
    weights = jax.random.normal(jax.random.key(1), (1, 3, 4, 5))

    def f(lg):
        return jnp.sum(weights * rescale_own_argmax(jax.nn.softmax(lg, -1), 0.9))

    grad = jax.grad(f)(logits)
    # below eps the top class is set to eps and the others share 1 - eps in G's proportions:
    # every other logit moves the map, the top one does not
    top = jax.nn.one_hot(jnp.argmax(logits, -1), 5, dtype=bool)
    assert float(jnp.abs(jnp.where(top, 1.0, grad)).min()) > 1e-5
    assert float(jnp.abs(jnp.where(top, grad, 0.0)).max()) < 1e-7  # 0 up to rounding
    # ... as central differences say (the argmax and the eps branch are locally constant)
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = tuple(int(rng.integers(0, s)) for s in logits.shape)
        h = 1e-2
        up, down = logits.at[idx].add(h), logits.at[idx].add(-h)
        np.testing.assert_allclose((f(up) - f(down)) / (2 * h), grad[idx], rtol=2e-2,
                                   atol=1e-4)
    # the paper's real map passes none
    labels = jnp.zeros((1, 3, 4), jnp.int32)
    g = jax.grad(lambda lg: jnp.sum(epsilon_rescale(jax.nn.softmax(lg, -1), labels)))(logits)
    assert float(jnp.abs(g).max()) == 0.0


def test_layout_judging_adversary_scores_a_ground_truth_map_as_the_real_one(tmp_path):
    """rescale_fake: when G's argmax is the ground truth, the fake map A sees is the real map,
    so A's logits for both are equal and A cannot be trained to tell them apart (its loss
    stays at 2 log 2 - its gradient at equal logits z is only towards z = 0); the paper's A
    sees G's raw map and can."""
    from ..train_fixtures import tiny_config

    config = tiny_config(tmp_path)
    config.adversary.rescale_fake = True
    nets = state_lib.build_networks(config, 11, 2)
    state = jax.device_get(state_lib.init_state(nets, jax.random.key(0), jax.random.key(1),
                                                (1, 32, 48, 3), 11))
    labels = jnp.asarray(np.random.default_rng(0).integers(0, 11, (2, 32, 48)))
    logits = 2.0 * jax.nn.one_hot(labels, 11)  # right everywhere, unconfident (p ~ 0.4)
    probs = jax.nn.softmax(logits, -1)
    images = jax.random.normal(jax.random.key(2), (2, 32, 48, 3))
    u = steps._Updates(nets, config, "batch")
    variables = {"params": state.d_params, "batch_stats": state.d_batch_stats}
    real = epsilon_rescale(probs, labels, 0.9)
    out = nets.adversary.apply(variables, images, jnp.concatenate([real, u.fake_map(probs,
                                                                                 labels)]))
    np.testing.assert_array_equal(np.asarray(out[:2]), np.asarray(out[2:]))
    raw = nets.adversary.apply(variables, images, jnp.concatenate([real, probs]))
    assert float(jnp.abs(raw[:2] - raw[2:]).max()) > 1e-3


def test_full_resolution_map_branch_sees_structure_below_the_image_branch_stride():
    """A one-pixel checkerboard of two classes and the uniform 50/50 map have the same area
    averages: the paper's map branch (resized to the stride-4 grid first) cannot tell them
    apart, the full-resolution one can."""
    from ssgan_jax.models import Adversary

    x = jax.random.normal(jax.random.key(0), (1, 64, 64, 3))
    ii, jj = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    checker = np.eye(4, dtype=np.float32)[(ii + jj) % 2][None]
    uniform = np.zeros((1, 64, 64, 4), np.float32)
    uniform[..., :2] = 0.5
    diffs = {}
    for full in (False, True):
        adv = Adversary(image_branch="resnet50", image_branch_depth=1, width=16,
                        map_features=(8, 8), trunk_features=(8, 8, 8, 8),
                        map_full_resolution=full)
        v = adv.init(jax.random.key(2), x, uniform)
        diffs[full] = float(jnp.abs(adv.apply(v, x, checker) - adv.apply(v, x, uniform)).max())
    assert diffs[False] < 1e-3 < 1e-2 < diffs[True]


# --- the probe on hand-made maps ---------------------------------------------------------

N, H, W, C = 2, 8, 8, 3
LABELS = np.zeros((N, H, W), np.int32)
LABELS[:, :, W // 2:] = 1
WRONG = np.zeros((N, H, W), bool)
WRONG[:, : H // 2] = True  # G is wrong on the top half: class 2 where the truth is 0 or 1


def _hand_logits():
    """G's map: 0.5 on its label, 0.25 on the others; its label is the truth except on the
    top half, where it says class 2."""
    own = np.where(WRONG, 2, LABELS)
    probs = np.full((N, H, W, C), 0.25, np.float32)
    np.put_along_axis(probs, own[..., None], 0.5, axis=-1)
    return np.log(probs)


class HandMadeG(nn.Module):
    """A generator whose output is the hand-made map (a parameter)."""

    @nn.compact
    def __call__(self, images, train: bool = False, sizes=None):
        return self.param("logits", lambda _: jnp.asarray(_hand_logits()))[:images.shape[0]]


class ConfidenceJudge(nn.Module):
    """An adversary that looks only at how confident the map is: logit 20 (mean max - 0.8)."""

    @nn.compact
    def __call__(self, images, maps):
        k = self.param("k", lambda _: jnp.asarray(20.0))
        return (k * (jnp.mean(jnp.max(maps, -1), axis=(1, 2)) - 0.8))[:, None, None]


class LabelJudge(nn.Module):
    """An adversary that reads the true class off the image (channel 0) and scores the
    map's probability of it: logit 20 (mean u[truth] - 0.6)."""

    @nn.compact
    def __call__(self, images, maps):
        k = self.param("k", lambda _: jnp.asarray(20.0))
        truth = jnp.tile(images[..., 0], (maps.shape[0] // images.shape[0], 1, 1))
        p = jnp.take_along_axis(maps, truth.astype(jnp.int32)[..., None], -1)[..., 0]
        return (k * (jnp.mean(p, axis=(1, 2)) - 0.6))[:, None, None]


def _probe(judge):
    config = config_lib.get_config()
    config.model.bn_mode = "frozen"
    config.loss.lam = 0.1
    tx = optax.sgd(0.1)
    nets = state_lib.Networks(HandMadeG(), judge, tx, tx)
    state = jax.device_get(state_lib.init_state(nets, jax.random.key(0), jax.random.key(1),
                                                (N, H, W, 3), C))
    images = np.zeros((N, H, W, 3), np.float32)
    images[..., 0] = LABELS
    d = jax.local_device_count()  # both images alike: any split over the devices
    batch = {"image": images.reshape(d, N // d, H, W, 3), "label": LABELS.reshape(d, N // d, H, W)}
    probe = parallel.pmap_metrics(steps.make_probe(nets, config))
    return config, nets, state, {k: float(v) for k, v in jax.device_get(
        probe(parallel.on_devices(state), parallel.shard_batch(batch))).items()}


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_probe_of_a_confidence_judge_says_confidence():
    """Real map: the truth at 0.9 (max 0.9); G's map: max 0.5; G's labels made confident:
    max 0.9 as the real map, wrong labels and all. So d_confident = d_real and the share is
    1; the adversarial pull is pure sharpening (cosine with the entropy's gradient 1)."""
    config, nets, state, m = _probe(ConfidenceJudge())
    assert m["d_real"] == pytest.approx(_sigmoid(20 * (0.9 - 0.8)), rel=1e-5)
    assert m["d_fake"] == pytest.approx(_sigmoid(20 * (0.5 - 0.8)), rel=1e-4)
    assert m["d_confident"] == pytest.approx(m["d_real"], rel=1e-5)
    share = diagnostics.confidence_share(m["d_real"], m["d_fake"], m["d_confident"])
    assert share == pytest.approx(1.0, abs=1e-5)
    assert m["adv_entropy_cosine"] == pytest.approx(1.0, abs=1e-4)
    # entropy of [0.5, 0.25, 0.25] = 1.5 ln 2 at every pixel
    assert m["entropy"] == pytest.approx(1.5 * math.log(2), rel=1e-5)
    # the norm ratio and cosine with the cross-entropy, computed here without the probe
    logits = jnp.asarray(_hand_logits())
    images = jnp.zeros((N, H, W, 3)).at[..., 0].set(jnp.asarray(LABELS, jnp.float32))
    d_vars = {"params": state.d_params}
    g_adv = jax.grad(lambda lg: losses.generator_adversarial_loss(
        nets.adversary.apply(d_vars, images, jax.nn.softmax(lg, -1))))(logits)
    g_ce = jax.grad(lambda lg: losses.masked_cross_entropy(lg, jnp.asarray(LABELS)))(logits)
    ratio = config.loss.lam * float(jnp.linalg.norm(g_adv) / jnp.linalg.norm(g_ce))
    cos = float(jnp.vdot(g_adv, g_ce) / (jnp.linalg.norm(g_adv) * jnp.linalg.norm(g_ce)))
    assert m["adv_ce_norm_ratio"] == pytest.approx(ratio, rel=1e-4)
    assert m["adv_ce_cosine"] == pytest.approx(cos, abs=1e-5)


def test_probe_of_a_label_judge_says_layout():
    """Mean u[truth]: real 0.9; G's map 0.5 x 0.5 + 0.25 x 0.5 = 0.375; G's labels made
    confident 0.9 on the right half, 0.25 x 0.1 / 0.5 = 0.05 on the wrong half: 0.475.
    Sharpening closes about 7% of the gap."""
    _, _, _, m = _probe(LabelJudge())
    assert m["d_real"] == pytest.approx(_sigmoid(20 * (0.9 - 0.6)), rel=1e-5)
    assert m["d_fake"] == pytest.approx(_sigmoid(20 * (0.375 - 0.6)), rel=1e-4)
    assert m["d_confident"] == pytest.approx(_sigmoid(20 * (0.475 - 0.6)), rel=1e-4)
    share = diagnostics.confidence_share(m["d_real"], m["d_fake"], m["d_confident"])
    assert 0.0 < share < 0.1
    w = diagnostics.ConfidenceWarning(0.9)
    assert all(w.update(s, m["d_real"], m["d_fake"], m["d_confident"]) is None
               for s in range(5))
    assert m["adv_ce_cosine"] > 0.9  # its pull is the cross-entropy's


# --- in training and afterwards ---------------------------------------------------------


def test_probe_is_logged_in_phase2_and_diagnose_compares_two_checkpoints(trained_run, tmp_path,
                                                                         capsys):
    from ssgan_jax.training import loop
    from ssgan_jax.training.diagnose import run_diagnose

    from ..train_fixtures import loop_config

    config = loop_config(tmp_path)
    config.phase1.steps, config.phase2.steps = 1, 2
    config.train.probe_every = 1
    config.train.eval_every = 100
    loop.train_and_evaluate(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert out.count("[probe] step") == 2  # before iterations 2 and 3: phase 2 only
    # each phase's program: a line when it starts compiling and when its first step is done
    assert "[phase 1] compiling the phase-1 iteration" in out
    assert "[phase 2] compiled and ran the first iteration in" in out
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
             if x]
    probes = [x for x in lines if "probe/d_real" in x]
    assert [x["step"] for x in probes] == [1, 2]
    for key in ("d_fake", "d_confident", "entropy", "adv_ce_norm_ratio", "adv_ce_cosine",
                "adv_entropy_cosine"):
        assert all(math.isfinite(x[f"probe/{key}"]) for x in probes)

    # --mode=diagnose on the shared run: the probe, and labels against its own phase-1 end
    # (step 4) and against itself
    base, workdir, _ = trained_run
    config = base.copy_and_resolve_references()
    config.diagnose.batches = 2
    config.diagnose.reference = str(workdir)
    config.diagnose.reference_checkpoint = "4"
    capsys.readouterr()
    record = run_diagnose(config, str(workdir))
    assert record["step"] == 8 and set(record["probe"]) >= {"d_real", "d_confident"}
    assert record["reading"].startswith("reading: A ") and record["reading"] in (
        capsys.readouterr().out)
    changed = record["changed_labels"]
    assert changed["reference_step"] == 4 and changed["split"] == "val"
    assert changed["pixels"] > 0 and 0 < changed["changed_share"] <= 1
    written = json.loads((workdir / "diagnose" / "val_step_8.json").read_text())
    assert written["changed_labels"]["changed_pixels"] == changed["changed_pixels"]
    assert written["reading"] == record["reading"]
    config.diagnose.reference_checkpoint = "latest"
    assert run_diagnose(config, str(workdir))["changed_labels"]["changed_share"] == 0.0
