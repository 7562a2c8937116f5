"""The restore layer shared by ``vqcnir-restore`` (:mod:`vqcnir.cli.restore`) and the page (:mod:`vqcnir.app`).

Neither front end imports the other; both import this package:

- :mod:`vqcnir.restoring.models`: which model to use (:func:`~vqcnir.restoring.models.resolve_model`, the one
  place that picks a model when none is given), loading it with one clear error per bad model, and
  restoring one tensor with it.
- :mod:`vqcnir.restoring.budget`: the memory budget from decoding on: an image's size read from its header
  and checked against the budget before it is decoded.
- :mod:`vqcnir.restoring.files`: input -> output paths, the marker that recognises a previous output, and
  restoring files (one failure per image reported, the run goes on).
- :mod:`vqcnir.restoring.arguments`: the command-line options both front ends take (``--max-memory``, tiles).
"""
