"""The page (Gradio Blocks): restore uploaded photos, or browse a restored folder beside its inputs.

Tab "Restore photos": choose a model, upload photos, restore them with a progress bar, compare input and
output with a before/after slider (scroll to zoom, drag to pan, full screen) and side by side, download
the PNGs. Tab "Folder": a ``vqcnir-restore`` output folder as a gallery beside its inputs' gallery; a
selected pair opens in the slider. Problems (a file that is not an image, an upload over the limits, a
model that does not load) are shown as messages on the page, never as tracebacks.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import torch

from vqcnir.app.folders import MAX_GALLERY, FolderListing, full_size_copy, pair_folder, thumbnail
from vqcnir.app.models import LoadedModel, ModelStore, model_choices
from vqcnir.app.restoring import RestoreReport, UploadLimits, restore_uploads
from vqcnir.data import IMAGE_EXTENSIONS, UnreadableImageError
from vqcnir.inference import PADDINGS
from vqcnir.restoring.files import OverwriteError

# The page's choices of self-ensemble (vqcnir.inference: restorations of flipped / transposed copies averaged).
COPIES = {"1 pass": 1, "4 copies (4x time)": 4, "8 copies (8x time)": 8}

TITLE = "vqcnir: restore night photos"
KEEP_JOBS = 20  # restoration folders kept in the work folder; older ones are deleted


@dataclass(frozen=True)
class PageSettings:
    """What the page needs from the command line.

    Args:
        model: the model selected at start (``--model``), or None to offer only the demo-trained ones.
        workdir: a private folder for restored files and display copies (deleted by the CLI at exit).
        max_memory: memory budget of a restoration: bytes, ``"auto"`` or None (no limit).
        paths_from_page: accept model and folder paths typed on the page (the CLI allows it only on a
            loopback address: anyone who reaches the page could otherwise read images on this machine).
    """

    model: str | None
    device: torch.device
    workdir: str
    max_memory: int | str | None = "auto"
    limits: UploadLimits = field(default_factory=UploadLimits)
    inputs_folder: str | None = None
    restored_folder: str | None = None
    paths_from_page: bool = True


def _text(value: object) -> str:
    """``value`` safe inside the page's Markdown (file names may hold ``*``, ``_`` or HTML)."""
    escaped = html.escape(str(value), quote=False)
    for char in "\\`*_[]#|":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {_text(line)}" for line in lines)


def _new_job_folder(workdir: str) -> str:
    jobs = os.path.join(workdir, "jobs")
    os.makedirs(jobs, exist_ok=True)
    existing = sorted((name for name in os.listdir(jobs) if name.isdigit()), key=int)
    for old in existing[: max(len(existing) - KEEP_JOBS + 1, 0)]:
        old_path = os.path.join(jobs, old)
        for name in os.listdir(old_path):
            os.remove(os.path.join(old_path, name))
        os.rmdir(old_path)
    number = int(existing[-1]) + 1 if existing else 1
    folder = os.path.join(jobs, str(number))
    os.makedirs(folder)
    return folder


def _restore_summary(report: RestoreReport, loaded: LoadedModel, seconds: float) -> str:
    lines = []
    if report.restored:
        done = [f"{p.name}: {p.width} x {p.height}, {p.seconds:.1f} s" for p in report.restored]
        lines.append(f"**Restored {len(report.restored)} photo(s)** in {seconds:.1f} s with {_text(loaded.path)}:")
        lines.append(_bullets(done))
    if report.rejected:
        lines.append(f"**Not restored ({len(report.rejected)}):**")
        lines.append(_bullets(report.rejected))
    return "\n\n".join(lines)


def build_page(settings: PageSettings, store: ModelStore | None = None) -> gr.Blocks:
    """The Gradio page for ``settings``; the caller launches it (see :mod:`vqcnir.app.cli`).

    ``store`` holds the loaded model (a new one on ``settings.device`` when None).
    """
    store = store or ModelStore(settings.device)
    choices = model_choices(settings.model)

    def chosen_path(path: str | None) -> str:
        path = (path or "").strip()
        if not settings.paths_from_page and path not in choices:
            raise ValueError(f"model {path!r} is not one of the models this page was started with")
        return path

    def load(path: str | None) -> LoadedModel:
        return store.get(chosen_path(path))

    def show_model(path: str | None) -> str:
        if not (path or "").strip():
            return "No model chosen: type the path of a `save_pretrained` folder or of an official `.pth` file."
        try:
            return f"Model: {_text(load(path).description)}"
        except Exception as error:  # any loading failure becomes a message on the page, not a traceback
            return f"**Could not load the model:** {_text(f'{type(error).__name__}: {error}')}"

    # Gradio finds the progress bar by this default value in the signature.
    def restore(
        path: str | None,
        padding: str,
        copies: str,
        uploads: list[str] | None,
        progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple:
        nothing = (None, None, None, [], None, [])  # a failed job clears the previous results
        if not uploads:
            return ("Upload one or more night photos first.", *nothing)
        if copies not in COPIES or padding not in PADDINGS:  # a request need not come from this page's controls
            return (
                f"**Unknown option:** copies must be one of {list(COPIES)}, padding one of {list(PADDINGS)}.",
                *nothing,
            )
        try:
            loaded = load(path)
        except Exception as error:  # shown on the page
            return (f"**Could not load the model:** {_text(f'{type(error).__name__}: {error}')}", *nothing)
        start = time.perf_counter()
        progress(0.0, desc="starting")
        with store.lock:
            report = restore_uploads(
                loaded.model,
                uploads,
                _new_job_folder(settings.workdir),
                padding=padding,
                self_ensemble=COPIES[copies],
                max_memory=settings.max_memory,
                limits=settings.limits,
                progress=lambda fraction, description: progress(fraction, desc=description),
            )
        summary = _restore_summary(report, loaded, time.perf_counter() - start)
        if report.rejected:
            gr.Warning(f"{len(report.rejected)} upload(s) not restored: see the message under the Restore button")
        if not report.restored:
            return (summary, *nothing)
        pairs = [(p.input_png, p.output_png, p.name) for p in report.restored]
        first = pairs[0]
        return (
            summary,
            (first[0], first[1]),
            first[0],
            first[1],
            [(output, name) for _, output, name in pairs],
            [p.output_png for p in report.restored],
            pairs,
        )

    def select_pair(pairs: list[tuple[str, str, str]], event: gr.SelectData) -> tuple:
        before, after, _ = pairs[event.index]
        return (before, after), before, after

    def show_folder(inputs: str | None, restored: str | None) -> tuple:
        if not settings.paths_from_page:
            inputs, restored = settings.inputs_folder, settings.restored_folder
        inputs, restored = (inputs or "").strip(), (restored or "").strip()
        empty = (gr.update(value=None), [], [], [])
        if not inputs and not restored:
            return ("Give the folder of inputs and the folder `vqcnir-restore` wrote.", *empty)
        try:
            listing: FolderListing = pair_folder(inputs, restored)
        except (FileNotFoundError, ValueError, OverwriteError) as error:
            return (f"**Cannot show these folders:** {_text(error)}", *empty)
        if not listing.pairs:
            return (f"No restored image in {_text(restored)} matches an input in {_text(inputs)}.", *empty)
        thumbs = os.path.join(settings.workdir, "thumbnails")
        in_gallery, out_gallery, state, unreadable = [], [], [], []
        for p in listing.pairs:
            if len(state) == MAX_GALLERY:
                break
            try:  # one unreadable image is reported; the others are still shown
                pictures = (thumbnail(p.source, thumbs), p.name), (thumbnail(p.restored, thumbs), p.name)
            except UnreadableImageError as error:
                unreadable.append(f"{p.name}: {error.reason}")
                continue
            in_gallery.append(pictures[0])
            out_gallery.append(pictures[1])
            state.append((p.source, p.restored, p.name))
        message = f"**{len(listing.pairs)} restored image(s)** beside their inputs"
        if len(listing.pairs) > len(state) + len(unreadable):
            message += f" (the first {len(state)} shown)"
        if listing.unrestored:
            message += f"; {listing.unrestored} input(s) have no restored image yet"
        if unreadable:
            message += f"\n\n**Not shown ({len(unreadable)}, cannot be read):**\n\n{_bullets(unreadable)}"
        if not state:
            return (message, *empty)
        first = _full_size_pair(state[0])
        return (message + "\n\nSelect one to compare it.", first, in_gallery, out_gallery, state)

    def _full_size_pair(pair: tuple[str, str, str]) -> tuple[str, str]:
        folder = os.path.join(settings.workdir, "full")
        return full_size_copy(pair[0], folder), full_size_copy(pair[1], folder)

    def select_folder_pair(pairs: list[tuple[str, str, str]], event: gr.SelectData) -> tuple[str, str]:
        return _full_size_pair(pairs[event.index])

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            f"# {TITLE}\nDark, blurred photos in, restored PNGs out, on this machine only. "
            "In the comparisons: drag the divider, scroll to zoom, drag to pan."
        )
        with gr.Tab("Restore photos"):
            with gr.Row():
                model = gr.Dropdown(
                    choices=choices,
                    value=choices[0] if choices else None,
                    allow_custom_value=settings.paths_from_page,
                    label="Model",
                    info="a folder written by save_pretrained, an official .pth file, or the demo-trained model",
                    elem_id="model",
                    scale=3,
                )
                padding = gr.Radio(list(PADDINGS), value="official", label="Padding", scale=1)
                copies = gr.Radio(
                    list(COPIES),
                    value="1 pass",
                    label="Self-ensemble",
                    info="average the restorations of flipped copies: a little sharper detail, slower",
                    elem_id="copies",
                    scale=2,
                )
            model_info = gr.Markdown(elem_id="model-info")
            uploads = gr.File(
                file_count="multiple",
                file_types=list(IMAGE_EXTENSIONS),
                label=f"Night photos (up to {settings.limits.max_pixels / 1e6:g} megapixels each)",
                elem_id="uploads",
            )
            restore_button = gr.Button("Restore", variant="primary", elem_id="restore")
            status = gr.Markdown(elem_id="status")
            compare = gr.ImageSlider(
                label="Before / after", type="filepath", elem_id="compare", buttons=["download", "fullscreen"]
            )
            with gr.Row():
                side_input = gr.Image(
                    label="Input", type="filepath", interactive=False, height=360, elem_id="side-input"
                )
                side_output = gr.Image(
                    label="Restored", type="filepath", interactive=False, height=360, elem_id="side-output"
                )
            results = gr.Gallery(
                label="Restored photos (select one to compare)", columns=6, height=220, elem_id="results"
            )
            downloads = gr.File(label="Restored PNGs", file_count="multiple", interactive=False, elem_id="downloads")
            pairs = gr.State([])

        with gr.Tab("Folder", elem_id="folder-tab"):
            with gr.Row():
                inputs_folder = gr.Textbox(
                    value=settings.inputs_folder or "",
                    label="Inputs folder",
                    interactive=settings.paths_from_page,
                    elem_id="inputs-folder",
                )
                restored_folder = gr.Textbox(
                    value=settings.restored_folder or "",
                    label="Restored folder (written by vqcnir-restore)",
                    interactive=settings.paths_from_page,
                    elem_id="restored-folder",
                )
            show_button = gr.Button("Show", elem_id="show-folder")
            folder_status = gr.Markdown(elem_id="folder-status")
            with gr.Row():
                input_gallery = gr.Gallery(label="Inputs", columns=4, height=420, elem_id="input-gallery")
                output_gallery = gr.Gallery(label="Restored", columns=4, height=420, elem_id="output-gallery")
            folder_compare = gr.ImageSlider(
                label="Before / after", type="filepath", elem_id="folder-compare", buttons=["download", "fullscreen"]
            )
            folder_pairs = gr.State([])

        page.load(show_model, model, model_info)
        model.change(show_model, model, model_info)
        restore_button.click(
            restore,
            [model, padding, copies, uploads],
            [status, compare, side_input, side_output, results, downloads, pairs],
        )
        results.select(select_pair, pairs, [compare, side_input, side_output])
        folder_outputs = [folder_status, folder_compare, input_gallery, output_gallery, folder_pairs]
        show_button.click(show_folder, [inputs_folder, restored_folder], folder_outputs)
        if settings.inputs_folder and settings.restored_folder:
            page.load(show_folder, [inputs_folder, restored_folder], folder_outputs)
        for gallery in (input_gallery, output_gallery):
            gallery.select(select_folder_pair, folder_pairs, folder_compare)
    return page
