"""``--config=configs/camvid.py`` from a checkout, ``--config=camvid`` from anywhere:
the config is ``ssgan_jax/configs/camvid.py``, which ships with the package."""

from ssgan_jax.configs.camvid import get_config  # noqa: F401
