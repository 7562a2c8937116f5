"""Serving the page: Gradio mounted in an app whose outermost layer is :class:`~vqcnir.app.guard.RequestGuard`.

Gradio's own ``launch`` grants CORS to any origin when the ``Host`` is not a loopback name, and has no
``Host`` check, so the page is mounted (``gradio.mount_gradio_app``) in a FastAPI app that refuses foreign
requests before any route and configures CORS itself with no allowed origin (Gradio then adds none).
Uvicorn serves it on a socket bound beforehand (a busy port is one clear line) and stops on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from vqcnir.app.guard import RequestGuard


def guarded_app(page: gr.Blocks, names: Iterable[str], port: int, max_file_size: int) -> FastAPI:
    """``page`` mounted at ``/`` behind the Host/Origin guard for a server on ``port`` known as ``names``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(CORSMiddleware, allow_origins=[])  # no cross-origin grant (and Gradio adds none)
    app.add_middleware(RequestGuard, names=list(names), port=port)  # added last: outermost
    return gr.mount_gradio_app(
        app,
        page,
        path="",
        server_port=port,
        show_error=True,
        max_file_size=max_file_size,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=["settings"],
    )


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on the listening ``sock`` until Ctrl-C or SIGTERM (then KeyboardInterrupt is raised)."""
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
