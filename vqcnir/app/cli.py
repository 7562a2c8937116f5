"""``vqcnir-app``: start the page that restores night photos (``pip install -e ".[app]"``).

    vqcnir-app                                              # the demo-trained model, if there is one
    vqcnir-app --model VQCNIR_LOLBlur_G.pth --port 7861     # the authors' weights
    vqcnir-app --model runs/vqcnir/best --inputs photos/ --restored photos_restored/    # folder mode too

Serves http://127.0.0.1:PORT only, opens no browser and waits until Ctrl-C or SIGTERM. Serving beyond this
machine needs ``--host ADDRESS --allow-network`` and prints what that exposes. Nothing goes to the network:
Gradio's analytics and version check are off, the page loads no remote assets, and no share link is made.

Safety (README "Security"): requests whose ``Host`` is not this server's, and cross-origin requests, are
refused (:mod:`vqcnir.app.guard`: DNS rebinding). Model and folder paths typed on the page are accepted only
on a loopback address; on any other address the page offers only the ones given here. Every copy of a
photo (uploads, Gradio's cache, restorations, display copies) is kept in one private work folder (0700,
files 0600) that is removed on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence

from vqcnir.app.guard import is_loopback, server_names
from vqcnir.app.restoring import DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_UPLOAD_MB, UploadLimits
from vqcnir.device import device_argument
from vqcnir.restoring.arguments import memory_argument

# Read by Gradio and huggingface_hub when they are imported and when the server starts.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

GRADIO_TEMP_DIR = "GRADIO_TEMP_DIR"  # where Gradio copies uploads and outputs (read when it is imported)
PRIVATE_UMASK = 0o077  # files 0600, folders 0700: no other local user reads a photo or its restoration
NETWORK_WARNING = (
    "vqcnir-app: WARNING: serving on {host} (--allow-network): anyone who can reach this address can upload "
    "photos, restore them on this machine and download the results; model and folder paths typed on the page "
    "are disabled (only --model, --inputs and --restored are offered). Use it only on a network you trust."
)


def _positive(kind: type) -> object:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqcnir-app", description="A local web page that restores night photos and compares them."
    )
    parser.add_argument("--model", help="a save_pretrained folder or an official .pth (default: the demo-trained one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine)")
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="allow a --host that is not a loopback address (the page is then reachable from the network)",
    )
    parser.add_argument("--port", type=_positive(int), default=7860, help="port (default 7860)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--max-memory",
        type=memory_argument,
        default="auto",
        help="memory a restoration may use, e.g. 4GB: larger photos go through exact tiles (the same result); "
        "'auto' (default): 80%% of the memory free as each restoration starts; 'none': no limit",
    )
    parser.add_argument(
        "--max-upload-mb", type=_positive(float), default=DEFAULT_MAX_UPLOAD_MB, help="largest upload (default 200)"
    )
    parser.add_argument(
        "--max-megapixels",
        type=_positive(float),
        default=DEFAULT_MAX_MEGAPIXELS,
        help=f"largest image accepted (default {DEFAULT_MAX_MEGAPIXELS:g})",
    )
    parser.add_argument("--inputs", help="folder mode: the folder of inputs given to vqcnir-restore")
    parser.add_argument("--restored", help="folder mode: the folder vqcnir-restore wrote")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.inputs is None) != (args.restored is None):
        parser.error("arguments --inputs and --restored go together (the folder mode needs both)")
    for flag, folder in (("--inputs", args.inputs), ("--restored", args.restored)):
        if folder is not None and not os.path.isdir(folder):
            parser.error(f"argument {flag}: folder not found: {folder}")
    local = is_loopback(args.host)
    if not local and not args.allow_network:
        parser.error(
            f"argument --host: {args.host} is not a loopback address: the page would be reachable from the network; "
            "add --allow-network to serve it there anyway"
        )
    if not local:
        print(NETWORK_WARNING.format(host=args.host), file=sys.stderr, flush=True)
    os.environ.update(OFFLINE_ENVIRONMENT)
    umask = os.umask(PRIVATE_UMASK)
    workdir = tempfile.mkdtemp(prefix="vqcnir-app-")  # 0700
    print(f"vqcnir-app: uploads and restorations are kept in {workdir} (private; removed when it stops)", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    temp_dir = os.environ.get(GRADIO_TEMP_DIR)
    try:
        return _serve(parser, args, workdir, local)
    except KeyboardInterrupt:
        print("vqcnir-app: stopped", file=sys.stderr, flush=True)
        return 0
    finally:  # the process state as it was (main() also runs inside tests)
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
        os.umask(umask)
        if temp_dir is None:
            os.environ.pop(GRADIO_TEMP_DIR, None)
        else:
            os.environ[GRADIO_TEMP_DIR] = temp_dir


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: the server stops and the work folder is removed."""
    raise KeyboardInterrupt


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (OSError when the address cannot be used)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace, workdir: str, local: bool) -> int:
    # Gradio reads its cache folder when imported: every copy it makes of an upload goes into the work folder.
    os.environ[GRADIO_TEMP_DIR] = os.path.join(workdir, "gradio")
    from vqcnir.app.models import ModelStore, model_choices
    from vqcnir.app.page import PageSettings, build_page
    from vqcnir.app.server import guarded_app, run_server

    device = device_argument(parser, args.device)
    store = ModelStore(device)
    model = next(iter(model_choices(args.model)), None)
    if model is not None:
        try:
            print(f"vqcnir-app: model {store.get(model).description}", flush=True)
        except (FileNotFoundError, ValueError) as error:
            parser.error(f"argument --model: {error}")
    else:
        print("vqcnir-app: no model given and no demo-trained model found: choose one on the page", flush=True)
    settings = PageSettings(
        model=model,
        device=device,
        workdir=workdir,
        max_memory=args.max_memory,
        limits=UploadLimits(int(args.max_upload_mb * 2**20), int(args.max_megapixels * 1e6)),
        inputs_folder=args.inputs,
        restored_folder=args.restored,
        paths_from_page=local,
    )
    try:
        sock = _bind(args.host, args.port)
    except OSError as error:
        print(f"vqcnir-app: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    app = guarded_app(build_page(settings, store), server_names(args.host), args.port, int(args.max_upload_mb * 2**20))
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"vqcnir-app: serving http://{url_host}:{args.port} (Ctrl-C stops)", flush=True)
    run_server(app, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
