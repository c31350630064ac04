"""What the reliability suite shares: its size (reduced in CI, full on request) and running as another user.

``PMON_RELIABILITY_FULL=1 pytest -m reliability`` runs every case at the size
the issue names (50 kills, 100,000 plugin ids, ...); without it the long
cases run smaller so CI stays quick, and each says both sizes.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

FULL = os.environ.get("PMON_RELIABILITY_FULL", "") not in ("", "0")
"""True when the suite runs at full size."""

REPO = Path(__file__).resolve().parents[2]


def size(reduced: int, full: int) -> int:
    """``full`` with PMON_RELIABILITY_FULL=1, else ``reduced``."""
    return full if FULL else reduced


def other_user() -> tuple[int, int] | None:
    """(uid, gid) of an unprivileged user who can run this interpreter and import pmon, or None.

    Root ignores file permissions, so "unwritable" cases must run as someone else.
    """
    if os.geteuid() != 0:
        return (os.geteuid(), os.getegid())  # already unprivileged
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    try:
        probe = subprocess.run([sys.executable, "-c", "import pmon"], capture_output=True, cwd="/",
                               user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], timeout=60)
    except OSError:  # e.g. the interpreter lives under /root, which nobody may enter
        return None
    return (nobody.pw_uid, nobody.pw_gid) if probe.returncode == 0 else None


def run_as(user: tuple[int, int], code: str, *, timeout: float = 60, env: dict[str, str] | None = None,
           cwd: str = "/") -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` as ``user`` (from ``other_user()``)."""
    uid, gid = user
    kwargs = {} if os.geteuid() != 0 else {"user": uid, "group": gid, "extra_groups": []}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "HOME": "/tmp", **(env or {})}, **kwargs)
