"""Building blocks of the training recipes (``recipes/train_vqgan.py``, ``recipes/train_vqcnir.py``).

- :mod:`.options` / :mod:`.config`: typed dataclass options, YAML files, ``--key=value`` overrides.
- :mod:`.data`: datasets from options and a batch stream that resumes at any batch.
- :mod:`.update`: one generator + discriminator step (VQCNIRLoss, PatchGAN, Adam, MultiStepLR).
- :mod:`.session`: experiment folder, progress, logs, image grids, validation, best model, checkpoints.
- :mod:`.stage1`: stage 1's training, which both recipes run (stage 2 trains stage 1 first when needed).
- :mod:`.state`: atomic checkpoints with optimizer / scheduler / RNG state; :mod:`.runtime`: device,
  torchrun/DDP, bf16 autocast, Ctrl-C; :mod:`.evaluation`: PSNR/SSIM validation; :mod:`.monitor`:
  TensorBoard/CSV logs and PNG grids. Files go through :mod:`vqcnir.io`, the bar is :mod:`vqcnir.progress`.
"""
