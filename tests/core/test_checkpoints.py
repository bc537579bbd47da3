"""Orbax tracks the best checkpoint by validation mIoU (best_fn), across restarts."""

from __future__ import annotations

import numpy as np

from ssgan_jax.core import checkpoints as ckpt_lib


def _state(x):
    return {"w": np.full((3,), x, np.float32)}


def test_best_checkpoint_is_kept_and_found_after_a_restart(tmp_path):
    ck = ckpt_lib.Checkpoints(str(tmp_path), keep=2)
    for step, miou in ((1, None), (2, 0.5), (3, 0.2), (4, 0.3)):
        ck.save(step, _state(step), {"step": step}, miou)
    ck.wait()
    assert ck.steps() == [2, 3, 4] and ck.best_step() == 2  # latest 2, plus the best
    ck.close()
    # a new process (a resumed run): the metrics come from disk, so the best is still known
    # and still protected when newer checkpoints push older ones out
    again = ckpt_lib.Checkpoints(str(tmp_path), keep=2)
    assert again.best_step() == 2
    for step in (5, 6):
        again.save(step, _state(step), {"step": step})
    again.wait()
    assert again.steps() == [2, 5, 6] and again.best_step() == 2
    restored = again.restore(_state(0.0), 2)
    assert restored.step == 2 and restored.meta == {"step": 2}
    np.testing.assert_array_equal(restored.state["w"], _state(2)["w"])
    again.close()
    assert ckpt_lib.Checkpoints(str(tmp_path), read_only=True).best_step() == 2
