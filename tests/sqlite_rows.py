"""Reading a store with plain sqlite3, as a user with the sqlite3 shell would.

A module of its own, not conftest.py: importing from ``conftest`` breaks when
pytest has already loaded another directory's conftest under that name.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def rows(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of ``sql`` read straight from the file."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
