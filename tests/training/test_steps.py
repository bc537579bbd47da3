"""The pure train steps: device-count invariance, frozen networks, falling losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.core import parallel
from ssgan_jax.models import build_generator
from ssgan_jax.training import optimizers, steps
from ssgan_jax.training import state as state_lib

from ..train_fixtures import tiny_config
from .step_fixtures import (
    C,
    make_batch,
    make_networks,
    make_state,
    max_diff,
    sgd_networks,
    split_over,
)

_UPDATES: dict = {}


def _update_fn(config, role, adversarial, devices, sgd=False):
    """The pmapped ``steps.make_update`` for these settings, compiled once per test module:
    tests whose configs differ only in their data folders share the program."""
    settings = config.copy_and_resolve_references()
    settings.data.manual_dir = settings.data.data_dir = ""
    key = (role, adversarial, sgd, settings.to_json(), tuple(d.id for d in devices))
    if key not in _UPDATES:
        nets = make_networks(config, 2 if adversarial else 1)
        if sgd:
            nets = sgd_networks(nets)
        _UPDATES[key] = parallel.pmap_step(
            steps.make_update(role, nets, config, adversarial=adversarial), devices=devices)
    return _UPDATES[key]


def _run(config, role, adversarial, state, batch, devices, sgd=False):
    """One G or A update (``steps.make_update``) on ``devices``: (host state, metrics)."""
    fn = _update_fn(config, role, adversarial, devices, sgd)
    new, metrics = fn(state, split_over(batch, len(devices)))
    return jax.device_get(new), jax.device_get(metrics)


@pytest.fixture
def config(tmp_path):
    return tiny_config(tmp_path)


def test_two_devices_equal_one_device_on_the_same_global_batch(tmp_path, two_devices):
    """FCN-8s (no BatchNorm) + A: one D step and one G step on 2 devices == on 1 device."""
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    batch = make_batch()
    state = state_lib.fresh_optimizers(make_state(config, make_networks(config, 2)),
                                   sgd_networks(make_networks(config, 2)))
    results = {}
    for name, devices in (("one", two_devices[:1]), ("two", two_devices)):
        s, m_d = _run(config, "adversary", True, state, batch, devices, sgd=True)
        s, m_g = _run(config, "generator", True, s, batch, devices, sgd=True)
        results[name] = (s, m_d, m_g)
    a, b = results["one"], results["two"]
    for x, y in zip(jax.tree.leaves((a[0].g_params, a[0].d_params)),
                    jax.tree.leaves((b[0].g_params, b[0].d_params)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    for key in ("loss_d", "d_acc_real", "d_acc_fake"):
        np.testing.assert_allclose(a[1][key], b[1][key], rtol=1e-4)
    for key in ("ce", "adv", "loss_g"):
        np.testing.assert_allclose(a[2][key], b[2][key], rtol=1e-4)
    assert max_diff(state.g_params, a[0].g_params) > 1e-3  # the update did something
    assert max_diff(state.d_params, a[0].d_params) > 1e-3


def test_batchnorm_statistics_are_shared_across_devices(config, two_devices):
    """DeepLabv3 with bn_mode "train": batch statistics over the global batch on 2 devices.

    The running statistics (forward quantities) must match 1 device closely, and so must the
    update: it is judged against the same update with each device's own statistics, which
    moves the weights by orders of magnitude more. Width 16: at width 32 the stem has 2
    channels, whose near-zero batch variances make the gradients chaotic (on a 2-core EPYC VM,
    1 vs 2 devices moved a kernel by 0.07 while reordering the batch moved it by 4e-4, and the
    other way round with flax's BatchNorm); at width 16 the shared update is 1e-4 off.
    """
    config.model.width = 16
    batch = make_batch()
    state = state_lib.fresh_optimizers(make_state(config, make_networks(config, 1)),
                                   sgd_networks(make_networks(config, 1)))
    one, m1 = _run(config, "generator", False, state, batch, jax.devices()[:1], sgd=True)
    two, m2 = _run(config, "generator", False, state, batch, two_devices, sgd=True)
    for x, y in zip(jax.tree.leaves(one.g_batch_stats), jax.tree.leaves(two.g_batch_stats),
                    strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(m1["ce"], m2["ce"], rtol=1e-4)
    shared = max_diff(one.g_params, two.g_params)
    # the same update with each device's own batch statistics (no cross-device mean): on this
    # net it moves the weights by ~10, four orders more than the shared statistics' ~3e-4
    nets = sgd_networks(make_networks(config, 1))
    local = state_lib.Networks(build_generator(config.model, C, axis_name=None),
                               nets.adversary, nets.g_tx, nets.d_tx)
    fn = parallel.pmap_step(steps.make_update("generator", local, config, adversarial=False),
                            devices=two_devices)
    per_device = jax.device_get(fn(state, split_over(batch, 2))[0])
    assert shared <= 1e-3 * max_diff(one.g_params, per_device.g_params)
    assert shared < 3e-3
    # (that the statistics are those of the global batch, not per device, is also checked at
    # the model level: tests/models/test_networks.py, averaged over axis_name)


def test_each_step_leaves_the_other_network_untouched(config):
    config.phase2.d_steps = 2  # the settings of the fused-iteration test: its programs
    batch = make_batch()
    nets = sgd_networks(make_networks(config, 2))
    state = state_lib.fresh_optimizers(make_state(config, nets), nets)
    devices = jax.devices()[:2]
    # the same programs as the fused-iteration test below
    after_d, _ = _run(config, "adversary", True, state, batch, devices, sgd=True)
    after_g, _ = _run(config, "generator", True, state, batch, devices, sgd=True)
    same = lambda a, b: all(np.array_equal(x, y) for x, y in  # noqa: E731
                            zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert same(after_d.g_params, state.g_params)
    assert same(after_d.g_batch_stats, state.g_batch_stats)
    assert same(after_d.g_opt, state.g_opt)
    assert same(after_d.d_batch_stats, state.d_batch_stats)  # A's BN is frozen
    assert not same(after_d.d_params, state.d_params)
    assert same(after_g.d_params, state.d_params) and same(after_g.d_opt, state.d_opt)
    assert not same(after_g.g_params, state.g_params)
    assert not same(after_g.g_batch_stats, state.g_batch_stats)  # bn_mode "train" updates
    # single updates leave the step alone; a whole iteration advances it once (checked in
    # test_phase2_iteration_equals_the_separate_steps)
    assert int(after_g.step) == int(after_d.step) == 0
    config.model.bn_mode = "frozen"
    frozen_state = make_state(config, make_networks(config, 1))
    after, _ = _run(config, "generator", False, frozen_state, batch, devices)
    assert same(after.g_batch_stats, frozen_state.g_batch_stats)


def test_losses_fall_on_a_fixed_batch(tmp_path):
    config = tiny_config(tmp_path, "fcn8s_vgg16")
    config.phase1.lr = config.phase1.end_lr = 3e-3
    batch = make_batch()
    devices = jax.devices()[:2]  # 2 where there are (conftest gives the CPU 2), else 1
    nets = make_networks(config, 1)
    state = parallel.on_devices(make_state(config, nets))
    g = parallel.pmap_step(steps.make_train_step(nets, config, phase=1), devices=devices)
    split = split_over(batch, len(devices))
    ce = []
    for _ in range(25):
        state, m = g(state, split)
        ce.append(float(m["ce"]))
    assert ce[-1] < 0.7 * ce[0], ce
    # the adversary learns to tell rescaled real maps from G's maps on a fixed batch
    nets2 = make_networks(config, 2)
    d = parallel.pmap_step(steps.make_update("adversary", nets2, config), devices=devices)
    loss_d = []
    for _ in range(15):
        state, m = d(state, split)
        loss_d.append(float(m["loss_d"]))
    assert loss_d[-1] < loss_d[0] - 0.05, loss_d


def test_optimizer_schedules_and_structure():
    tx = optimizers.make_optimizer("adam", 1e-4, 1e-5, 10)
    params = {"w": jnp.ones((3,))}
    state = tx.init(params)
    grads = {"w": jnp.ones((3,))}
    updates, state = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], -1e-4, rtol=1e-3)  # Adam's first step = -lr
    for _ in range(20):
        updates, state = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], -1e-5, rtol=1e-2)  # decayed to end_lr
    sgd = optimizers.make_optimizer("sgd", 0.1, 0.1, 5, momentum=0.9)
    s = sgd.init(params)
    u1, s = sgd.update(grads, s, params)
    u2, s = sgd.update(grads, s, params)
    np.testing.assert_allclose(u1["w"], -0.1)
    np.testing.assert_allclose(u2["w"], -0.1 * 1.9)  # momentum 0.9
    a = jax.tree.structure(optimizers.make_optimizer("adam", 1, 0.1, 5).init(params))
    b = jax.tree.structure(optimizers.make_optimizer("adam", 3, 0.3, 7).init(params))
    assert a == b  # both phases' states fit one checkpoint layout
    with pytest.raises(ValueError, match="optimizer kind"):
        optimizers.make_optimizer("rmsprop", 1e-3, 1e-3, 1)


def test_phase2_iteration_equals_the_separate_steps(config):
    """Without dropout the fused iteration (one G forward) is exactly d A updates then a G
    update, each with its own G forward: same weights, optimizer states, BatchNorm
    statistics, step counter and metrics; and both equal those updates run one by one."""
    config.phase2.d_steps = 2
    nets = sgd_networks(make_networks(config, 2))
    state = state_lib.fresh_optimizers(make_state(config, nets), nets)
    batch = make_batch()
    devices = jax.devices()[:2]  # 2 where there are, else 1
    split = split_over(batch, len(devices))
    fused, m_fused = parallel.pmap_step(steps.make_train_step(nets, config, phase=2),
                                     devices=devices)(state, split)
    config.phase2.share_generator_forward = False
    sep, m_sep = parallel.pmap_step(steps.make_train_step(nets, config, phase=2),
                                 devices=devices)(state, split)
    d_update = _update_fn(config, "adversary", True, devices, sgd=True)
    g_update = _update_fn(config, "generator", True, devices, sgd=True)
    one, _ = d_update(state, split)
    one, m_d = d_update(one, split)
    one, m_g = g_update(one, split)
    fused, sep, one = jax.device_get((fused, sep, one))
    assert int(fused.step) == int(sep.step) == 1 and int(one.step) == 0
    for other in (sep, one.replace(step=one.step + 1)):
        for x, y in zip(jax.tree.leaves(fused), jax.tree.leaves(other), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert set(m_fused) == set(m_sep) == set(m_d) | set(m_g)
    for key, value in {**m_d, **m_g}.items():
        np.testing.assert_allclose(m_fused[key], value, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(m_sep[key], value, rtol=1e-4, atol=1e-5)
    assert max_diff(state.d_params, fused.d_params) > 1e-3  # both networks moved
    assert max_diff(state.g_params, fused.g_params) > 1e-3
