"""VQCNIR: the night-image restoration model built from the ``vqcnir_ops`` layers (model issue)."""
