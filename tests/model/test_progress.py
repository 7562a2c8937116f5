"""vqcnir.progress.Progress: one bar for per-item CLIs and per-iteration training."""

from __future__ import annotations

import io

import pytest

from vqcnir.progress import Progress, format_duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_n_steps_with_item_values_and_the_last_one():
    stream = io.StringIO()
    with Progress(5, "train", initial=1, every=2, stream=stream) as bar:
        assert not bar.interactive
        for step in range(4):
            bar.update(values={"total": 0.25, "pixel": 1 / 3}) if step else bar.update("first.png")
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["2/5", "4/5", "5/5"]  # every 2 steps, and the last
    assert lines[0].startswith("train [") and "first.png" in lines[0]
    assert lines[-1].endswith("total=0.25 pixel=0.3333") and "eta 0:00:00" in lines[-1]
    assert lines[-1].split()[1] == "[" + "#" * 24 + "]"


def test_terminal_redraws_one_line_and_write_goes_above_it():
    stream = Terminal()
    bar = Progress(3, "restoring", unit="img", stream=stream)
    assert bar.interactive
    bar.update("a.png")
    bar.write("val @ 1: psnr=20")
    bar.update("b.png")
    bar.update("c.png")  # the last step is always drawn
    bar.close()
    bar.close()
    text = stream.getvalue()
    assert "\n" not in text.split("val @ 1: psnr=20\n")[1][:-1]  # after the message: redraws only, one final newline
    assert text.endswith("\n") and text.count("\n") == 2
    assert "3/3" in text.rsplit("\r", 1)[1] and "c.png" in text.rsplit("\r", 1)[1]


def test_disabled_prints_nothing_but_counts():
    stream = Terminal()
    bar = Progress(2, "train", enabled=False, stream=stream)
    bar.update()
    bar.write("message")
    bar.close()
    assert stream.getvalue() == "" and bar.done == 1


def test_rate_units_and_durations(monkeypatch):
    clock = iter([0.0, 10.0, 10.0])
    monkeypatch.setattr("vqcnir.progress.time.perf_counter", lambda: next(clock))
    bar = Progress(4, "restoring", unit="img", stream=io.StringIO())
    bar.done = 2  # two images in 10 s
    assert "5.00 s/img eta 0:00:10" in bar.line()
    assert format_duration(3725) == "1:02:05" and format_duration(float("inf")) == "?"
    with pytest.raises(ValueError, match="every >= 1"):
        Progress(3, every=0)
