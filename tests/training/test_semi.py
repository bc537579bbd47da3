"""Semi-supervised phase 2: the self-training mask and the fused semi iteration
(a whole run: tests/training/test_semi_run.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ssgan_jax.core import parallel
from ssgan_jax.training import losses, steps
from ssgan_jax.training import state as state_lib

from ..train_fixtures import tiny_config
from .step_fixtures import make_batch, make_networks, make_state, max_diff, sgd_networks, split_over


def test_confidence_mask_by_hand():
    # 2x2 cells over a 4x6 image: each cell covers 2 rows x 3 columns
    logits = np.array([[[2.0, -2.0], [0.0, 5.0]]])  # sigmoid: 0.88, 0.12, 0.5, 0.99
    mask = np.asarray(losses.confidence_mask(logits, 4, 6, threshold=0.6))
    want = np.array([[1, 1, 1, 0, 0, 0],
                      [1, 1, 1, 0, 0, 0],
                      [0, 0, 0, 1, 1, 1],
                      [0, 0, 0, 1, 1, 1]], bool)
    np.testing.assert_array_equal(mask[0], want)
    # 3 cells over 4 rows: rows 0, 1 -> cell 0; 2 -> cell 1; 3 -> cell 2 (floor(i * 3 / 4))
    logits = np.array([[[1.0], [-1.0], [1.0]]])
    mask = np.asarray(losses.confidence_mask(logits, 4, 2, threshold=0.5))
    np.testing.assert_array_equal(mask[0, :, 0], [True, True, False, True])
    assert not np.asarray(losses.confidence_mask(logits, 4, 2, threshold=0.99)).any()


# every unlabelled term on; self-training from phase-2 iteration 5
FULL = {"lam_adv_unlabeled": 0.5, "lam_semi": 1.0, "mask_threshold": 0.3, "start_step": 5}


def _semi_config(tmp_path, **semi):
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    config.semi.unlabeled_batch_size = 4
    config.semi.update(semi)
    config.phase1.steps = 0  # state.step 0 is phase-2 iteration 0
    return config


_COMPILED: dict = {}


def _iteration(config, state, batch, devices):
    """One phase-2 iteration (SGD for both networks: updates show the gradients) on
    ``devices``; the pmapped step is kept per (semi settings, device count), so tests that
    only change inputs share one compilation."""
    key = (config.model.name, config.model.width, repr(sorted(config.semi.items())),
           config.phase1.steps, len(devices))
    if key not in _COMPILED:
        nets = sgd_networks(make_networks(config, 2))
        _COMPILED[key] = parallel.pmap_step(steps.make_train_step(nets, config, phase=2),
                                         devices=devices)
    new, metrics = _COMPILED[key](state, split_over(batch, len(devices)))
    return jax.device_get(new), jax.device_get(metrics)


def _semi_batch(seed=0):
    batch = make_batch(seed=seed)
    batch["unlabeled"] = make_batch(seed=seed + 100)["image"]
    return batch


def _fresh(config):
    return state_lib.fresh_optimizers(make_state(config, make_networks(config, 2)),
                                  sgd_networks(make_networks(config, 2)))


def test_semi_iteration_on_two_devices_equals_one_device(tmp_path, two_devices):
    config = _semi_config(tmp_path, **FULL)
    state, batch = _fresh(config).replace(step=np.asarray(5, np.int32)), _semi_batch()
    one = _iteration(config, state, batch, two_devices[:1])
    two = _iteration(config, state, batch, two_devices)
    for x, y in zip(jax.tree.leaves((one[0].g_params, one[0].d_params)),
                    jax.tree.leaves((two[0].g_params, two[0].d_params)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    for key in ("ce", "adv", "adv_unlabeled", "d_out_unlabeled", "semi_ce", "semi_mask_share",
                "loss_g", "loss_d", "d_acc_fake"):
        np.testing.assert_allclose(one[1][key], two[1][key], rtol=1e-4, err_msg=key)
    assert 0.0 < one[1]["semi_mask_share"] <= 1.0 and one[1]["semi_on"] == 1.0
    assert max_diff(state.g_params, one[0].g_params) > 1e-3


def test_semi_iteration_without_unlabelled_terms_is_the_supervised_one(tmp_path):
    """FCN-8s has no BatchNorm, so with every unlabelled weight at 0 the unlabelled images
    change nothing: the semi iteration equals the supervised fused one."""
    config = _semi_config(tmp_path, lam_adv_unlabeled=0.0, lam_semi=0.0,
                          adversary_unlabeled=False)
    state, batch = _fresh(config), _semi_batch()
    devices = jax.devices()[:2]
    semi, m_semi = _iteration(config, state, batch, devices)
    config.semi.unlabeled_batch_size = 0
    plain, m_plain = _iteration(config, state, {k: batch[k] for k in ("image", "label")},
                                devices)
    for x, y in zip(jax.tree.leaves((semi.g_params, semi.d_params)),
                    jax.tree.leaves((plain.g_params, plain.d_params)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m_semi["loss_g"], m_plain["loss_g"], rtol=1e-5)
    assert "adv_unlabeled" in m_semi and "adv_unlabeled" not in m_plain


@pytest.mark.parametrize("which", ["adversary", "generator"])
def test_unlabelled_images_reach_exactly_the_terms_that_use_them(tmp_path, which):
    """Other unlabelled images change A's update only when A judges them, G's only when a
    weight on them is > 0."""
    on = {"adversary": {"adversary_unlabeled": True, "lam_adv_unlabeled": 0.0},
          "generator": {"adversary_unlabeled": False, "lam_adv_unlabeled": 0.5}}[which]
    config = _semi_config(tmp_path, **on)
    state, devices = _fresh(config), jax.devices()[:2]
    a, _ = _iteration(config, state, _semi_batch(0), devices)
    other = {**_semi_batch(0), "unlabeled": _semi_batch(7)["unlabeled"]}
    b, _ = _iteration(config, state, other, devices)
    assert (max_diff(a.d_params, b.d_params) > 1e-6) == (which == "adversary")
    assert max_diff(a.g_params, b.g_params) > 1e-7  # G follows the changed A, or its own term


def test_self_training_waits_for_its_start_step(tmp_path):
    config = _semi_config(tmp_path, **FULL)
    state, batch = _fresh(config), _semi_batch()
    _, early = _iteration(config, state, batch, jax.devices()[:1])  # iteration 0 < 5
    _, late = _iteration(config, state.replace(step=np.asarray(5, np.int32)), batch,
                         jax.devices()[:1])
    assert early["semi_on"] == 0.0 and late["semi_on"] == 1.0
    assert early["semi_mask_share"] == late["semi_mask_share"] > 0.0
    # the only difference in G's loss: lam_semi * the self-training cross-entropy
    np.testing.assert_allclose(late["loss_g"] - early["loss_g"],
                               FULL["lam_semi"] * late["semi_ce"], rtol=1e-3, atol=1e-5)


def test_bn_matched_control_differs_from_the_supervised_iteration_only_through_batchnorm(
        tmp_path):
    """The semi study's BatchNorm-matched control (every unlabelled weight at 0) on DeepLabv3,
    whose BatchNorm takes batch statistics: the unlabelled images reach no loss, yet G's
    update and its running statistics differ from the supervised iteration's, and change with
    the unlabelled images. (FCN-8s, without BatchNorm, is equal: the test above.)"""
    config = tiny_config(tmp_path, "deeplabv3_resnet50")
    config.semi.unlabeled_batch_size = 4
    config.semi.update(lam_adv_unlabeled=0.0, lam_semi=0.0, adversary_unlabeled=False)
    config.phase1.steps = 0
    assert config.model.bn_mode == "train"
    state, batch = _fresh(config), _semi_batch()
    devices = jax.devices()[:1]
    semi, _ = _iteration(config, state, batch, devices)
    other, _ = _iteration(config, state, {**batch, "unlabeled": _semi_batch(7)["unlabeled"]},
                          devices)
    config.semi.unlabeled_batch_size = 0
    plain, _ = _iteration(config, state, {k: batch[k] for k in ("image", "label")}, devices)
    for name, a, b in (("supervised", semi, plain), ("other unlabelled images", semi, other)):
        assert max_diff(a.g_params, b.g_params) > 1e-5, name
        assert max_diff(a.g_batch_stats, b.g_batch_stats) > 1e-5, name
