"""ssgan-jax: SS-GAN adversarial training of semantic segmentation networks in JAX/Flax.

See ``docs`` and README.md; the method is restated in PAPER.md (sections cited in code).
"""

__version__ = "0.1.0"
