"""The page's folder mode with one unreadable image (issue 19, failure 6): the others are shown, the bad one named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.data.images import write

pytest.importorskip("gradio")


def test_one_unreadable_image_is_named_and_the_others_are_shown(tmp_path):
    from vqcnir.app.page import PageSettings, build_page

    for name in ("a", "c"):
        write(tmp_path / "in" / f"{name}.png", np.full((8, 8, 3), 50, np.uint8))
        write(tmp_path / "out" / f"{name}.png", np.full((8, 8, 3), 200, np.uint8))
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")  # unreadable input, with a restoration beside it
    write(tmp_path / "out" / "b.png", np.full((8, 8, 3), 200, np.uint8))
    settings = PageSettings(None, torch.device("cpu"), str(tmp_path / "work"),
                            inputs_folder=str(tmp_path / "in"), restored_folder=str(tmp_path / "out"))  # fmt: skip
    page = build_page(settings)
    show_folder = next(block.fn for block in page.fns.values() if block.name == "show_folder")
    message, first, inputs, outputs, state = show_folder(str(tmp_path / "in"), str(tmp_path / "out"))
    assert [name for _, name in inputs] == ["a.png", "c.png"] and len(outputs) == 2
    assert "Not shown (1, cannot be read)" in message and "b.png" in message
    assert first is not None and [pair[2] for pair in state] == ["a.png", "c.png"]
