"""vqcnir-app as a hostile page or another local user would meet it (issue 19, failures 1, 2, 6 and 7).

One app in a subprocess: the DNS-rebinding chain is refused at its first request, every copy of a photo
(Gradio's upload cache, the restoration) lies in one private folder while it runs, and SIGTERM removes it.
"""

from __future__ import annotations

import os
import re
import stat

import httpx
import numpy as np
import pytest

from tests.app.server import running_app
from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model
from vqcnir.app import cli

gradio_client = pytest.importorskip("gradio_client")


def _private(folder: str) -> list[str]:
    """Paths under ``folder`` that another local user could read or enter (the ``find -perm -004`` of the issue)."""
    exposed = []
    for root, dirs, names in os.walk(folder):
        for path in [root] + [os.path.join(root, name) for name in dirs + names]:
            if os.lstat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                exposed.append(path)
    return exposed


def test_foreign_requests_are_refused_and_photos_stay_private_until_sigterm(tmp_path):
    model = str(tmp_path / "tiny")
    save_tiny_model(model)
    photo = write(tmp_path / "night.png", np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    log = str(tmp_path / "app.log")
    env = {"VQCNIR_OPS_BACKEND": "reference", "GRADIO_TEMP_DIR": str(tmp_path / "shared-gradio-cache")}
    with running_app(["--model", model], log, env) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        workdir = re.search(r"kept in (\S+) \(private", open(log).read()).group(1)
        foreign = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
        with open(photo, "rb") as data:  # the first step of the chain: upload a decoy
            refused = httpx.post(f"{url}gradio_api/upload", headers=foreign, files={"files": data})
        assert refused.status_code == 403
        assert not any(name.lower().startswith("access-control") for name in refused.headers)
        preflight = httpx.options(f"{url}gradio_api/upload", headers={
            "Origin": "http://attacker.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers

        client = gradio_client.Client(url, verbose=False, download_files=False)
        result = client.predict(model, "official", "1 pass", [gradio_client.handle_file(photo)], api_name="/restore")
        assert "Restored 1 photo" in result[0]
        try:  # a value the page's radio does not offer: refused by Gradio or by the page, never run
            odd = client.predict(
                model, "official", "99 copies", [gradio_client.handle_file(photo)], api_name="/restore"
            )
            assert odd[0].startswith("**Unknown option:**") and odd[1] is None, odd
        except gradio_client.exceptions.AppError:
            pass
        assert os.path.realpath(result[5][0]["path"]).startswith(os.path.realpath(workdir) + os.sep)
        copies = [os.path.join(root, name) for root, _, names in os.walk(workdir) for name in names]
        assert any(name.endswith("night.png") for name in copies)  # Gradio's upload copy, in the private folder
        assert any(name.endswith(".input.png") for name in copies)
        assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700 and _private(workdir) == []
        assert not os.path.exists(tmp_path / "shared-gradio-cache")  # a GRADIO_TEMP_DIR given is not used
    assert not os.path.exists(workdir)  # running_app stops it with SIGTERM
    assert "vqcnir-app: stopped" in open(log).read()


def test_serving_beyond_loopback_needs_the_flag_and_says_what_it_exposes(capsys, monkeypatch):
    for key, value in cli.OFFLINE_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as stop:
        cli.main(["--host", "0.0.0.0"])
    assert stop.value.code == 2 and "add --allow-network" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_serve", lambda parser, args, workdir, local: 0 if not local else 1)
    assert cli.main(["--host", "0.0.0.0", "--allow-network"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: serving on 0.0.0.0" in err and "anyone who can reach this address" in err


@pytest.mark.parametrize("stop", ["ctrl-c", "normal exit"])
def test_the_work_folder_is_private_and_removed_on_ctrl_c_and_normal_exit(stop, capsys, monkeypatch):
    """Ctrl-C reaches main() as KeyboardInterrupt (uvicorn re-raises SIGINT after its graceful shutdown)."""
    for key, value in cli.OFFLINE_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    seen = {}

    def serve(parser, args, workdir, local):
        seen["workdir"], seen["mode"] = workdir, stat.S_IMODE(os.stat(workdir).st_mode)
        with open(os.path.join(workdir, "photo.png"), "wb"):
            pass
        seen["file"] = stat.S_IMODE(os.stat(os.path.join(workdir, "photo.png")).st_mode)
        if stop == "ctrl-c":
            raise KeyboardInterrupt
        return 0

    monkeypatch.setattr(cli, "_serve", serve)
    assert cli.main([]) == 0
    assert seen["mode"] == 0o700 and seen["file"] == 0o600 and not os.path.exists(seen["workdir"])
    assert ("vqcnir-app: stopped" in capsys.readouterr().err) == (stop == "ctrl-c")
