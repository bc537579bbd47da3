"""One run's networks, initial state and compiled steps, built from its config the one way
the loop, the benchmark, the GPU check and the tests all use (``Experiment``)."""

from __future__ import annotations

import jax
import ml_collections

from ssgan_jax.core import parallel
from ssgan_jax.training import state as state_lib
from ssgan_jax.training import steps


class Experiment:
    """G, A and the optimizers of each phase (``networks``), the initial state of
    ``config.seed`` at ``data.crop_size``, and the pmapped steps over all local devices (or
    ``devices``)."""

    def __init__(self, config: ml_collections.ConfigDict, num_classes: int):
        self.config, self.num_classes = config, num_classes
        self._networks: dict[int, state_lib.Networks] = {}

    def networks(self, phase: int) -> state_lib.Networks:
        """G, A and ``phase``'s optimizers (built once per phase)."""
        if phase not in self._networks:
            self._networks[phase] = state_lib.build_networks(self.config, self.num_classes,
                                                             phase)
        return self._networks[phase]

    @property
    def generator(self):
        return self.networks(1).generator

    def _init(self, phase: int) -> state_lib.TrainState:
        ch, cw = self.config.data.crop_size
        return state_lib.init_state(self.networks(phase), *state_lib.run_keys(self.config.seed),
                                    (1, ch, cw, 3), self.num_classes)

    def initial_state(self, phase: int = 1) -> state_lib.TrainState:
        """The fresh state (host arrays) with ``phase``'s optimizer states."""
        return jax.device_get(self._init(phase))

    def state_template(self, phase: int = 2) -> state_lib.TrainState:
        """The state's shapes and dtypes (``jax.ShapeDtypeStruct``s; nothing computed)."""
        return jax.eval_shape(lambda: self._init(phase))

    def fresh_optimizers(self, state: state_lib.TrainState, phase: int) -> state_lib.TrainState:
        """``state`` with ``phase``'s optimizers re-created (host arrays in, host arrays out)."""
        return state_lib.fresh_optimizers(state, self.networks(phase))

    def train_step(self, phase: int, devices=None, donate: bool | None = None):
        """One training iteration of ``phase`` (``steps.make_train_step``), pmapped; the
        state's buffers donated as ``train.donate`` says unless ``donate`` is given."""
        return parallel.pmap_step(steps.make_train_step(self.networks(phase), self.config,
                                                        phase),
                                  donate=self.config.train.donate if donate is None else donate,
                                  devices=devices)

    def update(self, which: str, devices=None, **kwargs):
        """One update of ``which`` ("generator" or "adversary") with phase 2's networks
        (``steps.make_update``), pmapped."""
        return parallel.pmap_step(steps.make_update(which, self.networks(2), self.config,
                                                    **kwargs),
                                  donate=self.config.train.donate, devices=devices)

    def probe(self):
        """The adversary probe of a phase-2 state (``steps.make_probe``), pmapped."""
        return parallel.pmap_metrics(steps.make_probe(self.networks(2), self.config))
