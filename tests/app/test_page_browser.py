"""The page in a real browser: headless Debian Chromium driven by Playwright against ``vqcnir-app``.

One app process (a random-weight tiny model saved in tmp, so restoring takes a second) serves both
tabs. The test uploads a night photo, waits for the restoration, downloads the PNG and checks its size
and content, checks the before/after slider shows the input and the output, uploads a text file named
``.png``, an image over the pixel limit and a file over the upload limit and finds each refusal on the
page, browses a ``vqcnir-restore`` output folder, and checks the page asked nothing of any other host.
A screenshot is saved under ``test-artifacts/`` (path printed). Set ``VQCNIR_APP_TEST_MODEL`` to a
trained model folder and ``VQCNIR_APP_SCREENSHOT`` to a path to make the README's screenshot with it.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.app.server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_unavailable, night_photo, running_app
from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model

UNAVAILABLE = browser_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"browser test skipped: {UNAVAILABLE}")

HEIGHT, WIDTH = 300, 451  # odd width: the output must keep the input's size exactly
MAX_MEGAPIXELS = 0.2  # the photo (0.135 MP) passes, a 500 x 500 image (0.25 MP) is refused
MAX_UPLOAD_MB = 1  # a 1.5 MB file is refused by the upload itself
TIMEOUT_MS = 120_000


def _fetch_png(page, url: str) -> np.ndarray:
    response = page.request.get(url)
    assert response.ok, f"{url}: HTTP {response.status}"
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))


def _image_sources(page, selector: str) -> list[str]:
    return page.locator(f"{selector} img").evaluate_all("imgs => imgs.map(i => i.currentSrc || i.src)")


def _new_sources(page, selector: str, old: list[str]) -> list[str]:
    """The slider's image sources once they differ from ``old`` (a selection has been shown)."""
    for _ in range(TIMEOUT_MS // 250):
        sources = _image_sources(page, selector)
        if len(sources) == 2 and sources != old:
            return sources
        page.wait_for_timeout(250)
    raise AssertionError(f"{selector} still shows {old}")


def test_restore_compare_download_reject_and_browse_a_folder(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    model_dir = os.environ.get("VQCNIR_APP_TEST_MODEL") or str(tmp_path / "tiny")
    if "VQCNIR_APP_TEST_MODEL" not in os.environ:
        save_tiny_model(model_dir)
    photo = night_photo(HEIGHT, WIDTH)
    photo_path = write(tmp_path / "uploads" / "night cat.png", photo)
    not_an_image = tmp_path / "uploads" / "notes.png"
    not_an_image.write_text("a text file renamed .png\n")
    too_large = write(tmp_path / "uploads" / "large.png", np.full((500, 500, 3), 40, np.uint8))
    heavy = write(
        tmp_path / "uploads" / "heavy.png", np.random.default_rng(0).integers(0, 256, (700, 750, 3), np.uint8)
    )
    assert os.path.getsize(heavy) > 1.2 * 2**20

    # a folder restored by vqcnir-restore, for the folder tab
    from vqcnir.cli.restore import main as restore_main

    inputs = tmp_path / "folder" / "in"
    for index in range(2):
        write(inputs / "street" / f"{index}.png", night_photo(48, 64, seed=index + 1))
    restored = tmp_path / "folder" / "out"
    assert restore_main([str(inputs), "-o", str(restored), "-m", model_dir, "--quiet"]) == 0

    os.makedirs(ARTIFACTS, exist_ok=True)
    args = ["--model", model_dir, "--max-megapixels", str(MAX_MEGAPIXELS), "--max-upload-mb", str(MAX_UPLOAD_MB)]
    args += ["--inputs", str(inputs), "--restored", str(restored)]
    env = {"GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    log = str(tmp_path / "app.log")
    with running_app(args, log, env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            elsewhere: list[str] = []
            page.on(
                "request",
                lambda request: (
                    None if request.url.startswith((url, "data:", "blob:")) else elsewhere.append(request.url)
                ),
            )
            page.goto(url)
            expect(page.locator("#model-info")).to_contain_text("VQCNIR", timeout=TIMEOUT_MS)

            # restore a photo; the downloaded PNG has the input's size and is not the input
            page.locator("#uploads input[type=file]").set_input_files(photo_path)
            expect(page.locator("#uploads")).to_contain_text("night cat", timeout=TIMEOUT_MS)
            page.locator("#restore").click()
            expect(page.locator("#status")).to_contain_text("Restored 1 photo", timeout=TIMEOUT_MS)
            expect(page.locator("#status")).to_contain_text(f"{WIDTH} x {HEIGHT}")
            link = page.locator("#downloads a[download]").first
            assert link.get_attribute("download") == "night cat.png"
            output = _fetch_png(page, link.get_attribute("href"))
            assert output.shape == photo.shape
            assert np.abs(output.astype(int) - photo.astype(int)).mean() > 1.0

            # the slider shows the input (before) and that same output (after)
            expect(page.locator("#compare img")).to_have_count(2, timeout=TIMEOUT_MS)
            before, after = (_fetch_png(page, source) for source in _image_sources(page, "#compare"))
            np.testing.assert_array_equal(before, photo)
            np.testing.assert_array_equal(after, output)
            screenshot = os.path.abspath(os.path.join(ARTIFACTS, "vqcnir-app.png"))
            page.screenshot(path=screenshot)
            print(f"\nscreenshot of the page: {screenshot}")
            if os.environ.get("VQCNIR_APP_SCREENSHOT"):
                shutil.copyfile(screenshot, os.environ["VQCNIR_APP_SCREENSHOT"])

            # a text file named .png and an image over the pixel limit: refused, with the reason on the page
            page.locator("#uploads button[aria-label='Clear']").first.click()
            page.locator("#uploads input[type=file]").set_input_files([str(not_an_image), too_large])
            expect(page.locator("#uploads")).to_contain_text("large", timeout=TIMEOUT_MS)
            page.locator("#restore").click()
            status = page.locator("#status")
            expect(status).to_contain_text("Not restored (2)", timeout=TIMEOUT_MS)
            expect(status).to_contain_text("notes.png is not an image that can be read")
            expect(status).to_contain_text(
                f"large.png is 500 x 500 = 0.25 megapixels, over the limit of {MAX_MEGAPIXELS:g}"
            )
            expect(status).not_to_contain_text("Traceback")
            expect(page.locator("#compare img")).to_have_count(0)
            page.locator("#uploads button[aria-label='Clear']").first.click()
            page.locator("#uploads input[type=file]").set_input_files(heavy)  # over --max-upload-mb
            expect(page.get_by_text("exceed the maximum allowed size")).to_be_visible(timeout=TIMEOUT_MS)
            expect(page.get_by_text('"heavy.png"')).to_be_visible()
            page.screenshot(path=os.path.join(ARTIFACTS, "vqcnir-app-refused.png"))

            # folder mode: both galleries, and a selected pair in the slider
            page.get_by_role("tab", name="Folder").click()
            expect(page.locator("#folder-status")).to_contain_text("2 restored image(s)", timeout=TIMEOUT_MS)
            expect(page.locator("#input-gallery img")).to_have_count(2)
            expect(page.locator("#output-gallery img")).to_have_count(2)
            expect(page.locator("#folder-compare img")).to_have_count(2, timeout=TIMEOUT_MS)  # the first pair
            first = _image_sources(page, "#folder-compare")
            page.locator("#output-gallery img").nth(1).click()
            before, after = (_fetch_png(page, source) for source in _new_sources(page, "#folder-compare", first))
            np.testing.assert_array_equal(before, np.asarray(Image.open(inputs / "street" / "1.png")))
            np.testing.assert_array_equal(after, np.asarray(Image.open(restored / "street" / "1.png")))
            page.screenshot(path=os.path.join(ARTIFACTS, "vqcnir-app-folder.png"), full_page=True)
            assert elsewhere == [], f"the page requested other hosts: {elsewhere}"
        finally:
            browser.close()
