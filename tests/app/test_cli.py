"""vqcnir-app's command line: sizes, addresses, argument errors before anything starts."""

from __future__ import annotations

import pytest

from vqcnir.app.cli import OFFLINE_ENVIRONMENT, build_parser, is_loopback, main


def test_max_memory_takes_sizes_auto_and_none_as_vqcnir_restore_does():
    def parsed(*argv: str) -> object:
        return build_parser().parse_args(list(argv)).max_memory

    assert parsed() == "auto"
    assert parsed("--max-memory", "4GB") == 4 * 10**9
    assert parsed("--max-memory", " 4GiB ") == parsed("--max-memory", "4g") == 4 * 2**30
    assert parsed("--max-memory", "None") is None


def test_only_loopback_addresses_count_as_local():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.2", "::", "example.org"]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--inputs", "."], "--inputs and --restored go together"),
        (["--inputs", ".", "--restored", "nowhere"], "argument --restored: folder not found: nowhere"),
        (["--max-memory", "lots"], "argument --max-memory: expected a size such as 4GB"),
        (["--max-memory", "0"], "argument --max-memory: expected a size such as 4GB"),
        (["--port", "0"], "argument --port: must be positive"),
        (["--device", "tpu"], "option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
        (["--model", "no/such/model"], "argument --model: model not found: no/such/model"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(argv, message, capsys, monkeypatch):
    for key, value in OFFLINE_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)  # main() sets them: restored after the test
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
