"""ssgan-jax: SS-GAN adversarial training of semantic segmentation networks in JAX/Flax.

See ``docs`` and README.md; the method is restated in METHOD.md (sections cited in code).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``ssgan_jax.Segmenter`` without importing JAX for ``import ssgan_jax`` itself."""
    if name == "Segmenter":
        from ssgan_jax.inference.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'ssgan_jax' has no attribute {name!r}")
