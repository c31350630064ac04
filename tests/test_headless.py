"""Headless code (the recording API, the daemon) never pays for the console."""

from __future__ import annotations

import subprocess
import sys


def test_import_pmon_does_not_import_textual() -> None:
    code = ("import sys, pmon, pmon.monitor, pmon.store.writer, pmon.store.queries, pmon.config, pmon.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'plotext', 'textual_plotext')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
