"""Who gets in: loopback by default, a token for anything else, the Host header checked, CORS only when asked."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from api_helpers import PREFIX, running_api

from pmon.api.listen import parse_listen
from pmon.api.security import allowed_hosts, resolve_token
from pmon.config import ApiConfig, ConfigError

TOKEN = "s3cret-token-0123456789abcdef"


def test_a_non_loopback_bind_without_a_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PMON_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="reachable from other machines"):
        resolve_token(ApiConfig(), parse_listen("0.0.0.0:8765"))
    assert resolve_token(ApiConfig(), parse_listen("127.0.0.1:8765")) is None
    with pytest.raises(ConfigError, match="at least 16"):
        resolve_token(ApiConfig(token="short"), parse_listen("0.0.0.0:8765"))
    result = subprocess.run([sys.executable, "-m", "pmon", "--db", str(tmp_path / "p.db"), "collect", "--foreground",
                             "--api", "0.0.0.0:0"], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "PMON_API_TOKEN"})
    assert result.returncode == 2
    assert "reachable from other machines" in result.stderr and "Traceback" not in result.stderr


def test_the_token_comes_from_the_environment_a_file_or_the_config(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PMON_API_TOKEN", raising=False)
    (tmp_path / "token").write_text(f"{TOKEN}-file\n")
    wide = parse_listen("0.0.0.0:1")
    assert resolve_token(ApiConfig(token_file="token", token=TOKEN), wide, tmp_path) == f"{TOKEN}-file"
    assert resolve_token(ApiConfig(token=TOKEN), wide) == TOKEN
    monkeypatch.setenv("PMON_API_TOKEN", f"{TOKEN}-env")
    assert resolve_token(ApiConfig(token_file="token", token=TOKEN), wide, tmp_path) == f"{TOKEN}-env"
    monkeypatch.delenv("PMON_API_TOKEN")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_token(ApiConfig(token_file="empty"), wide, tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_token(ApiConfig(token_file="missing"), wide, tmp_path)


def test_a_wrong_or_missing_token_is_401_and_the_token_is_never_echoed_or_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_api(tmp_path / "p.db", token=TOKEN) as api:
        missing = api.get("/plugins", auth=False)
        assert missing.status == 401 and missing.body["field"] == "Authorization"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        for wrong in (f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x", "Bearer "):
            assert api.get("/plugins", auth=False, headers={"Authorization": wrong}).status == 401, wrong
        assert api.request("GET", "/metrics", auth=False).status == 401
        assert api.get("/plugins").status == 200
        assert api.post("/plugins/web/logs?wait=1", {"level": "info", "message": "in"}).status == 201
        replies = [api.get("/status"), api.request("GET", "/metrics"), api.get("/plugins/web/logs")]
        assert all(r.status == 200 for r in replies)
        assert not any(TOKEN.encode() in r.raw for r in replies)
    assert TOKEN not in caplog.text


def test_undecodable_credentials_are_401_not_500(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", token=TOKEN) as api:
        for credentials in (b"\xff\xfe", b"\xc3\xa9", TOKEN.encode() + b"\x80"):
            answer = api.raw_exchange(f"GET {PREFIX}/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                      .encode() + b"Authorization: Bearer " + credentials + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 401"), answer[:40]
        assert api.get("/status").body["api"]["responses_5xx"] == 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "", "localhost.:1"])
def test_a_foreign_host_header_is_403(tmp_path: Path, host: str) -> None:
    with running_api(tmp_path / "p.db") as api:
        answer = api.raw_exchange(f"GET {PREFIX}/plugins HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                                  .encode())
        assert answer.startswith(b"HTTP/1.1 403"), answer[:60]
        assert b'"field":"Host"' in answer


def test_a_request_without_a_host_header_is_403(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        answer = api.raw_exchange(f"GET {PREFIX}/plugins HTTP/1.0\r\n\r\n".encode())
        assert b" 403 " in answer.split(b"\r\n")[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
def test_the_loopback_names_are_accepted(tmp_path: Path, host: str) -> None:
    with running_api(tmp_path / "p.db") as api:
        answer = api.raw_exchange(f"GET {PREFIX}/plugins HTTP/1.1\r\nHost: {host.format(port=api.port)}\r\n"
                                  "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200"), answer[:60]


def test_allowed_hosts_add_a_proxy_name_and_a_wildcard_bind_accepts_its_interfaces() -> None:
    names = allowed_hosts(parse_listen("127.0.0.1:1"), ("Monitor.Example",))
    assert {"monitor.example", "localhost", "127.0.0.1"} <= names and "evil.example" not in names
    wide = allowed_hosts(parse_listen("0.0.0.0:1"), ())
    assert socket.gethostname().lower() in wide and "127.0.0.1" in wide
    assert {"10.1.2.3", socket.gethostname().lower()} <= allowed_hosts(parse_listen("10.1.2.3:1"), ())


def test_no_cors_headers_unless_origins_are_configured(tmp_path: Path) -> None:
    origin = {"Origin": "https://dash.example"}
    with running_api(tmp_path / "p.db") as api:
        reply = api.get("/plugins", headers=origin)
        assert reply.status == 200 and not any(h.lower().startswith("access-control") for h in reply.headers)
        preflight = api.request("OPTIONS", PREFIX + "/plugins", headers={**origin,
                                                                         "Access-Control-Request-Method": "GET"})
        assert preflight.status == 405 and "Access-Control-Allow-Origin" not in preflight.headers
    with running_api(tmp_path / "q.db", token=TOKEN, cors_origins=("https://dash.example",)) as api:
        preflight = api.request("OPTIONS", PREFIX + "/plugins", auth=False,
                                headers={**origin, "Access-Control-Request-Method": "GET"})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://dash.example"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        assert api.get("/plugins", headers=origin).headers["Access-Control-Allow-Origin"] == "https://dash.example"
        other = api.get("/plugins", headers={"Origin": "https://evil.example"})
        assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers


def test_connections_over_the_cap_get_503_and_the_rest_are_served(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", max_connections=5) as api:
        held = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(5)]
        try:
            refused = api.raw_exchange(f"GET {PREFIX}/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert refused.startswith(b"HTTP/1.1 503") and b"max_connections" in refused
        finally:
            for sock in held:
                sock.close()
        for _ in range(50):  # the server notices the closes on its next loop turns
            reply = api.get("/status")
            if reply.status == 200:
                break
        assert reply.status == 200 and reply.body["api"]["refused_connections"] >= 1


def test_responses_name_pmon_not_the_server_software(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        assert api.get("/status").headers["Server"] == "pmon"
