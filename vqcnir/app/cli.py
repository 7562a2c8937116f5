"""``vqcnir-app``: start the page that restores night photos (``pip install -e ".[app]"``).

    vqcnir-app                                              # the demo-trained model, if there is one
    vqcnir-app --model VQCNIR_LOLBlur_G.pth --port 7861     # the authors' weights
    vqcnir-app --model runs/vqcnir/best --inputs photos/ --restored photos_restored/    # folder mode too

Serves http://127.0.0.1:PORT only (``--host`` to change it), opens no browser and waits until Ctrl-C.
Nothing goes to the network: Gradio's analytics and version check are off, the page loads no remote
assets, and no share link is made. Model and folder paths typed on the page are accepted only on a
loopback address; on any other address the page offers only the ones given here.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from vqcnir.app.restoring import DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_UPLOAD_MB, UploadLimits
from vqcnir.cli.models import memory_argument
from vqcnir.device import device_argument

# Read by Gradio and huggingface_hub when they are imported and when the server starts.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    os.environ.update(OFFLINE_ENVIRONMENT)


    from vqcnir.app.models import ModelStore, model_choices
    from vqcnir.app.page import PageSettings, build_page

    device = device_argument(parser, args.device)
    store = ModelStore(device)
    model = args.model or next(iter(model_choices(None)), None)
    if model is not None:
        try:
            print(f"vqcnir-app: model {store.get(model).description}", flush=True)
        except (FileNotFoundError, ValueError) as error:
            parser.error(f"argument --model: {error}")
    else:
        print("vqcnir-app: no model given and no demo-trained model found: choose one on the page", flush=True)
    workdir = tempfile.mkdtemp(prefix="vqcnir-app-")
    settings = PageSettings(
        model=model,
        device=device,
        workdir=workdir,
        max_memory=args.max_memory,
        limits=UploadLimits(int(args.max_upload_mb * 2**20), int(args.max_megapixels * 1e6)),
        inputs_folder=args.inputs,
        restored_folder=args.restored,
        paths_from_page=is_loopback(args.host),
    )
    page = build_page(settings, store)
    page.queue(default_concurrency_limit=1)
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"vqcnir-app: serving http://{url_host}:{args.port} (Ctrl-C stops)", flush=True)
    try:
        page.launch(
            server_name=args.host,
            server_port=args.port,
            inbrowser=False,
            share=False,
            show_error=True,
            max_file_size=int(args.max_upload_mb * 2**20),
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,
            footer_links=["settings"],
            quiet=True,
        )
    except OSError as error:
        print(f"vqcnir-app: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
