"""``--config=configs/cityscapes.py`` from a checkout, ``--config=cityscapes`` from anywhere:
the config is ``ssgan_jax/configs/cityscapes.py``, which ships with the package."""

from ssgan_jax.configs.cityscapes import get_config  # noqa: F401
