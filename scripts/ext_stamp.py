"""Is the built C++ extension (vqcnir_ops/_C*.so) still the one the sources and this torch would build?

    python scripts/ext_stamp.py check    # exit 0: up to date; exit 1: rebuild (the reason is printed)
    python scripts/ext_stamp.py write    # after a build: record what it was built from
    python scripts/ext_stamp.py clear    # before a build: remove the stamp and the old library

The stamp (``vqcnir_ops/_C.build-stamp``, git-ignored, beside the library it describes) holds a SHA-256 of
everything the build reads: every file under ``csrc/``, ``setup.py``, the torch and Python versions, and
the environment variables that change the build; plus a SHA-256 of the built library, so a library
replaced by hand is not trusted either. scripts/install.sh skips the compile when ``check`` passes.
Run it with the environment's Python: the torch version is read from that environment's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import sysconfig
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAMP = os.path.join("vqcnir_ops", "_C.build-stamp")
BUILD_VARIABLES = ("VQCNIR_BUILD_CUDA", "VQCNIR_CUDA_ARCHS", "TORCH_CUDA_ARCH_LIST", "CXX", "CC", "CUDA_HOME")


def library_path(root: str = ROOT) -> str:
    """Where ``setup.py`` puts the extension in an editable install."""
    return os.path.join(root, "vqcnir_ops", "_C" + sysconfig.get_config_var("EXT_SUFFIX"))


def _file_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs_hash(root: str = ROOT, torch_version: str | None = None, environ: dict[str, str] | None = None) -> str:
    """SHA-256 of what the build depends on (sources, setup.py, torch, Python, build variables)."""
    environ = os.environ if environ is None else environ
    torch_version = torch_version or metadata.version("torch")
    digest = hashlib.sha256()
    files = ["setup.py"]
    for folder, dirs, names in os.walk(os.path.join(root, "csrc")):
        dirs.sort()
        files += [os.path.relpath(os.path.join(folder, name), root) for name in sorted(names)]
    for name in files:
        digest.update(f"{name}\0{_file_hash(os.path.join(root, name))}\0".encode())
    digest.update(f"torch {torch_version}\0python {sys.version}\0{sysconfig.get_config_var('EXT_SUFFIX')}\0".encode())
    for variable in BUILD_VARIABLES:
        digest.update(f"{variable}={environ.get(variable, '')}\0".encode())
    return digest.hexdigest()


def check(root: str = ROOT, torch_version: str | None = None) -> str | None:
    """None when the built extension matches the stamp, else why it must be rebuilt."""
    library, stamp = library_path(root), os.path.join(root, STAMP)
    if not os.path.isfile(library):
        return f"{os.path.relpath(library, root)} is not built"
    if not os.path.isfile(stamp):
        return "no build stamp (built before stamps, or by hand)"
    try:
        with open(stamp) as source:
            recorded = json.load(source)
    except (OSError, ValueError) as error:
        return f"unreadable build stamp ({error})"
    if recorded.get("library") != _file_hash(library):
        return f"{os.path.relpath(library, root)} is not the library that was stamped"
    if recorded.get("inputs") != inputs_hash(root, torch_version):
        return "csrc/, setup.py, torch or the build variables changed since the last build"
    return None


def write(root: str = ROOT, torch_version: str | None = None) -> None:
    """Stamp the library just built (no stamp when the optional build produced none)."""
    library = library_path(root)
    if not os.path.isfile(library):
        return
    payload = {"inputs": inputs_hash(root, torch_version), "library": _file_hash(library)}
    payload["torch"] = torch_version or metadata.version("torch")
    tmp = os.path.join(root, STAMP + ".tmp")
    with open(tmp, "w") as out:
        json.dump(payload, out, indent=1)
    os.replace(tmp, os.path.join(root, STAMP))


def clear(root: str = ROOT) -> None:
    """Remove the stamp and the library: a build that fails (optional in ``auto`` mode) leaves neither behind."""
    for path in (os.path.join(root, STAMP), library_path(root)):
        if os.path.exists(path):
            os.remove(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("check", "write", "clear"))
    parser.add_argument("--root", default=ROOT, help="the checkout (default: this script's)")
    args = parser.parse_args(argv)
    if args.action == "check":
        reason = check(args.root)
        if reason is not None:
            print(f"building the C++ extension: {reason}")
            return 1
        return 0
    (write if args.action == "write" else clear)(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
