"""Kept for ``vqcnir.cli.restore``'s import until it uses :mod:`vqcnir.progress`, the one progress bar."""

from vqcnir.progress import Progress

__all__ = ["Progress"]
