"""``vqcnir-app``: a local web page to restore night photos and compare them (``pip install -e ".[app]"``).

    vqcnir-app --model experiments/vqcnir_demo/final --port 7860      # then open http://127.0.0.1:7860

Files, one job each:

- :mod:`vqcnir.app.restoring`: checks on each upload, the restoration (as ``vqcnir-restore`` does it),
  and the files a restoration writes.
- :mod:`vqcnir.app.models`: which models the page offers and the one loaded model visitors share.
- :mod:`vqcnir.app.folders`: the folder mode, a ``vqcnir-restore`` output folder paired with its inputs.
- :mod:`vqcnir.app.page`: the page layout (Gradio) and its events.
- :mod:`vqcnir.app.guard`: requests with a foreign ``Host`` or another ``Origin`` refused (DNS rebinding).
- :mod:`vqcnir.app.server`: the page mounted behind the guard, served by uvicorn.
- :mod:`vqcnir.app.cli`: the command line, the server settings (loopback unless ``--allow-network``, no
  telemetry, one private work folder removed on exit, Ctrl-C and SIGTERM).

The restoring itself (models, budget, files) is :mod:`vqcnir.restoring`, shared with ``vqcnir-restore``.
- :mod:`vqcnir.app.demo`: the README's first command restores the demo's held-out photos with it.

Importing this package needs no Gradio; :mod:`vqcnir.app.page` and :mod:`vqcnir.app.cli` import it when run.
"""
