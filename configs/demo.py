"""``--config=configs/demo.py`` from a checkout, ``--config=demo`` from anywhere:
the config is ``ssgan_jax/configs/demo.py``, which ships with the package."""

from ssgan_jax.configs.demo import get_config  # noqa: F401
