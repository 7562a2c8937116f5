"""Command-line tools: ``vqcnir-restore``, ``vqcnir-evaluate``."""
