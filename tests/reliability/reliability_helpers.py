"""What the reliability suite shares: its size (reduced in CI, full on request) and running as another user.

``PMON_RELIABILITY_FULL=1 pytest -m reliability`` runs every case at the size
the issue names (50 kills, 100,000 plugin ids, ...); without it the long
cases run smaller so CI stays quick, and each says both sizes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

FULL = os.environ.get("PMON_RELIABILITY_FULL", "") not in ("", "0")
"""True when the suite runs at full size."""

REPO = Path(__file__).resolve().parents[2]


def size(reduced: int, full: int) -> int:
    """``full`` with PMON_RELIABILITY_FULL=1, else ``reduced``."""
    return full if FULL else reduced


@dataclass(frozen=True)
class OtherUser:
    """An unprivileged user, and an interpreter they can run with this checkout and its packages importable."""

    uid: int
    gid: int
    python: str
    env: dict[str, str]


def other_user() -> OtherUser | None:
    """``nobody`` (when we are root) able to ``import pmon``, or None.

    Root ignores file permissions, so "unwritable" cases must run as someone
    else. The venv's interpreter may live under /root (pyenv), which nobody
    may enter; the system interpreter of the same version, with this checkout
    and the venv's site-packages on PYTHONPATH, is the same Python.
    """
    if os.geteuid() != 0:
        return OtherUser(os.geteuid(), os.getegid(), sys.executable, {})
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]]), "HOME": "/tmp"}
    for python in dict.fromkeys([sys.executable, f"/usr/bin/python{version}", shutil.which(f"python{version}")]):
        if not python:
            continue
        user = OtherUser(nobody.pw_uid, nobody.pw_gid, python, env)
        try:
            probe = run_as(user, "import pmon, psutil, sqlite3", timeout=60)
        except OSError:  # e.g. the interpreter lives under /root
            continue
        if probe.returncode == 0:
            return user
    return None


def run_as(user: OtherUser, code: str, *, timeout: float = 60, env: dict[str, str] | None = None,
           cwd: str = "/") -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` as ``user``."""
    kwargs: dict = {} if os.geteuid() != 0 else {"user": user.uid, "group": user.gid, "extra_groups": []}
    return subprocess.run([user.python, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **user.env, **(env or {})}, **kwargs)
