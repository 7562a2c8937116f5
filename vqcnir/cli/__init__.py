"""Command-line tools: ``vqcnir-restore`` (:mod:`vqcnir.cli.restore`) and ``vqcnir-evaluate`` (:mod:`vqcnir.cli.evaluate`)."""
