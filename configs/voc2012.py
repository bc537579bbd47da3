"""``--config=configs/voc2012.py`` from a checkout, ``--config=voc2012`` from anywhere:
the config is ``ssgan_jax/configs/voc2012.py``, which ships with the package."""

from ssgan_jax.configs.voc2012 import get_config  # noqa: F401
