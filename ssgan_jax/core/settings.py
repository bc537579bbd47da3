"""The test-time inference settings of a run (``config.eval``): whole image or sliding
windows, scales, flip. A value object of the core, so a config is checked without the
inference wing; ``inference/tta.py`` computes with it."""

from __future__ import annotations

import dataclasses

import ml_collections

from ssgan_jax.core.errors import ConfigError

MODES = ("whole", "sliding")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How logits are computed at test time (``config.eval``; see ``from_config``)."""

    mode: str = "whole"
    window: tuple[int, int] = (512, 512)  # sliding window (h, w), in the scaled image
    stride: tuple[int, int] = (341, 341)  # sliding stride (h, w)
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    windows_per_call: int = 0  # windows run together per forward pass; 0 = all at once

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"config.eval.mode must be one of {MODES}; got {self.mode!r}")
        if len(self.window) != 2 or min(self.window) < 1:
            raise ConfigError(f"config.eval.window must be (h, w) >= 1; got {self.window}")
        if len(self.stride) != 2 or min(self.stride) < 1:
            raise ConfigError(f"config.eval.stride must be (h, w) >= 1; got {self.stride}")
        if any(s > w for s, w in zip(self.stride, self.window, strict=True)):
            raise ConfigError(f"config.eval.stride {self.stride} is larger than the window "
                             f"{self.window}: pixels between windows would get no prediction")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"config.eval.scales must be positive; got {self.scales}")
        if self.windows_per_call < 0:
            raise ConfigError("config.eval.windows_per_call must be >= 0 (0 = all at once)")

    def tag(self) -> str:
        """'' for plain whole-image inference, else a short name of the settings."""
        parts = []
        if self.mode == "sliding":
            parts.append(f"sliding{self.window[0]}x{self.window[1]}"
                         f"s{self.stride[0]}x{self.stride[1]}")
        if tuple(self.scales) != (1.0,):
            parts.append("scales" + "-".join(f"{s:g}" for s in self.scales))
        if self.flip:
            parts.append("flip")
        return "_".join(parts)

    def as_dict(self) -> dict:
        return {"mode": self.mode, "window": list(self.window), "stride": list(self.stride),
                "scales": list(self.scales), "flip": self.flip}


def from_config(config: ml_collections.ConfigDict) -> Settings:
    """Settings from ``config.eval``; window (0, 0) = ``data.crop_size``, stride (0, 0) = 2/3
    of the window (rounded up)."""
    ev = config.eval
    window = tuple(int(v) for v in ev.window)
    if window == (0, 0):
        window = tuple(int(v) for v in config.data.crop_size)
    stride = tuple(int(v) for v in ev.stride)
    if stride == (0, 0):
        stride = tuple(max(1, -(-2 * w // 3)) for w in window)
    return Settings(mode=ev.mode, window=window, stride=stride,
                    scales=tuple(float(s) for s in ev.scales), flip=bool(ev.flip),
                    windows_per_call=int(ev.windows_per_call))
