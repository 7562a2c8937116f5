"""scripts/ext_stamp.py: the C++ extension is reused only while sources, setup.py and torch are unchanged."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "ext_stamp.py")
_spec = importlib.util.spec_from_file_location("ext_stamp", SCRIPT)
ext_stamp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ext_stamp)


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "csrc" / "cpu").mkdir(parents=True)
    (tmp_path / "csrc" / "include").mkdir()
    (tmp_path / "csrc" / "cpu" / "op_kernel.cpp").write_text("int op() { return 1; }\n")
    (tmp_path / "csrc" / "include" / "checks.h").write_text("#pragma once\n")
    (tmp_path / "setup.py").write_text("setup()\n")
    (tmp_path / "vqcnir_ops").mkdir()
    return tmp_path


def _build(root) -> None:
    with open(ext_stamp.library_path(str(root)), "wb") as library:
        library.write(b"\x7fELF built")


def test_a_stamped_build_is_reused_until_an_input_changes(checkout, monkeypatch):
    root = str(checkout)
    monkeypatch.delenv("VQCNIR_BUILD_CUDA", raising=False)
    assert "is not built" in ext_stamp.check(root, "2.13.0+cpu")
    _build(root)
    assert "no build stamp" in ext_stamp.check(root, "2.13.0+cpu")
    ext_stamp.write(root, "2.13.0+cpu")
    assert ext_stamp.check(root, "2.13.0+cpu") is None
    assert "torch" in ext_stamp.check(root, "2.14.0+cpu")  # another torch: rebuild
    monkeypatch.setenv("VQCNIR_BUILD_CUDA", "1")
    assert ext_stamp.check(root, "2.13.0+cpu") is not None  # another build setting: rebuild
    monkeypatch.delenv("VQCNIR_BUILD_CUDA")
    for changed in ("csrc/cpu/op_kernel.cpp", "csrc/include/checks.h", "setup.py"):
        path = checkout / changed
        original = path.read_text()
        path.write_text(original + "// edited\n")
        assert "changed since the last build" in ext_stamp.check(root, "2.13.0+cpu"), changed
        path.write_text(original)
        assert ext_stamp.check(root, "2.13.0+cpu") is None
    (checkout / "csrc" / "cpu" / "new_kernel.cpp").write_text("int other();\n")  # a new source file
    assert ext_stamp.check(root, "2.13.0+cpu") is not None
    os.remove(checkout / "csrc" / "cpu" / "new_kernel.cpp")
    with open(ext_stamp.library_path(root), "ab") as library:
        library.write(b"replaced by hand")
    assert "not the library that was stamped" in ext_stamp.check(root, "2.13.0+cpu")


def test_clear_removes_stamp_and_library_and_the_command_line_reports(checkout):
    root = str(checkout)
    _build(root)
    ext_stamp.write(root)
    check = [sys.executable, SCRIPT, "check", "--root", root]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    ext_stamp.clear(root)
    assert not os.path.exists(ext_stamp.library_path(root))
    assert not os.path.exists(os.path.join(root, ext_stamp.STAMP))
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 1 and "building the C++ extension" in result.stdout
    ext_stamp.write(root)  # nothing built (a failed optional build): no stamp
    assert not os.path.exists(os.path.join(root, ext_stamp.STAMP))
