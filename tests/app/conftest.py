"""A skipped browser test is announced at the end of the run, not only in the short summary."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "browser test skipped" in reason:
            terminalreporter.write_sep("!", f"vqcnir-app's {reason.removeprefix('Skipped: ')}", red=True, bold=True)
