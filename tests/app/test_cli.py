"""vqcnir-app's command line: sizes, addresses, argument errors before anything starts."""

from __future__ import annotations

import pytest

from vqcnir.app.cli import OFFLINE_ENVIRONMENT, is_loopback, main, parse_memory


def test_parse_memory_reads_decimal_and_binary_units():
    assert parse_memory("4GB") == 4 * 10**9
    assert parse_memory("4GiB") == parse_memory("4g") == 4 * 2**30
    assert parse_memory(" 512 MB ") == 512 * 10**6
    assert parse_memory("1.5e9") == 1_500_000_000
    assert parse_memory("2048") == 2048
    for bad in ("", "GB", "4 parsecs", "-1GB", "0"):
        with pytest.raises(ValueError, match="expected a size|more than 0"):
            parse_memory(bad)


def test_only_loopback_addresses_count_as_local():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.2", "::", "example.org"]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--inputs", "."], "--inputs and --restored go together"),
        (["--inputs", ".", "--restored", "nowhere"], "argument --restored: folder not found: nowhere"),
        (["--max-memory", "lots"], "argument --max-memory: expected a size"),
        (["--port", "0"], "argument --port: must be positive"),
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
