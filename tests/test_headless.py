"""Headless code (the recording API, the daemon) never pays for the console."""

from __future__ import annotations

import subprocess
import sys


def test_import_pmon_does_not_import_textual() -> None:
    code = ("import sys, pmon, pmon.monitor, pmon.store.writer, pmon.store.queries, pmon.config, pmon.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'plotext', 'textual_plotext')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_daemon_never_imports_the_console(tmp_path) -> None:
    code = ("import sys, runpy\n"
            "sys.argv = ['pmon', '--db', sys.argv[1], '--config', sys.argv[2], 'collect', '--once']\n"
            "try:\n"
            "    runpy.run_module('pmon', run_name='__main__')\n"
            "except SystemExit as exit:\n"
            "    assert exit.code == 0, exit.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'plotext', 'textual_plotext')))")
    config = tmp_path / "pmon.toml"
    config.write_text("[collector]\nsample_interval = 0.2\n[plugins.me]\npid = 1\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pmon.db"), str(config)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
