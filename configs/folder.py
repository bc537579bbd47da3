"""``--config=configs/folder.py`` from a checkout, ``--config=folder`` from anywhere:
the config is ``ssgan_jax/configs/folder.py``, which ships with the package."""

from ssgan_jax.configs.folder import get_config  # noqa: F401
