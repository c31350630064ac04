"""A hostile or careless client: odd query values, odd HTTP, floods. Each gets a 4xx JSON answer, never a 500,
and the server goes on serving."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from api_helpers import Api, running_api

from pmon.api import stream
from pmon.store import api_queries, stream_queries


def _no_500s(api: Api) -> None:
    status = api.get("/status")
    assert status.status == 200 and status.body["api"]["responses_5xx"] == 0, status.body


@pytest.mark.parametrize("query", [
    "limit=%C2%B2",  # '²' is a digit to str.isdigit, not to int()
    "limit=%D9%A1",  # an Arabic-Indic one
    "cursor=%C2%B2",
    "cursor=" + "9" * 5000,  # more digits than int() converts
    "cursor=" + "9" * 19,  # above SQLite's largest integer
], ids=["superscript-limit", "arabic-limit", "superscript-cursor", "5000-digit-cursor", "huge-cursor"])
def test_odd_digits_in_limit_and_cursor_are_400(tmp_path: Path, query: str) -> None:
    with running_api(tmp_path / "p.db") as api:
        api.post("/plugins/web/metrics?wait=1", {"metric_type": "cpu_usage", "value": 1})
        field = query.partition("=")[0]
        for path in ("/plugins/web/logs", "/plugins/web/events", "/plugins/web/snapshots"):
            reply = api.get(f"{path}?{query}")
            assert reply.status == 400 and reply.body["field"] == field, (path, reply.body)
        metric_query = query.replace("cursor=", "cursor=1-") if field == "cursor" else query
        reply = api.get(f"/plugins/web/metrics?{metric_query}")
        assert reply.status == 400 and reply.body["field"] == field, reply.body
        reply = api.get("/analytics/trends?plugin=web&metric=cpu_usage&points=%C2%B2")
        assert reply.status == 400 and reply.body["field"] == "points", reply.body
        _no_500s(api)


def test_a_duration_longer_than_since_1970_reads_everything_and_times_past_3000_are_400(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        api.post("/batch?wait=1", {"metrics": [
            {"plugin_id": "web", "metric_type": "response_time", "value": 5},
            {"plugin_id": "web", "metric_type": "error_rate", "value": 0.5, "timestamp": 1}]})
        for since in ("1e300d", "99999999999d", "36500d"):  # used to overflow SQLite's integers: 500
            for path in ("/plugins/web/metrics", "/plugins/web/logs", "/plugins/web/snapshots",
                         "/analytics/performance", "/analytics/trends", "/analytics/trends?plugin=web&metric=error_rate"):
                joiner = "&" if "?" in path else "?"
                reply = api.get(f"{path}{joiner}since={since}")
                assert reply.status == 200, (path, since, reply.body)
            assert api.get(f"/plugins/web/metrics?since={since}&cursor=1-1").status == 200
            assert api.get(f"/analytics/trends?since={since}").body["since"] == 0
            assert len(api.get(f"/plugins/web/metrics?since={since}").body["items"]) == 2
        for name, value in (("until", "9999-12-31T00:00:00Z"), ("since", "1969-12-31T00:00:00Z"),
                            ("until", "32503680000"), ("since", "1e309")):
            reply = api.get(f"/analytics/performance?{name}={value}")
            assert reply.status == 400 and reply.body["field"] == name, reply.body
        _no_500s(api)


def _split(answer: bytes) -> tuple[bytes, dict[str, str], object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line.encode(), headers, json.loads(body)


@pytest.mark.parametrize("request_bytes", [
    b"POST /api/advanced-monitoring/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
    b"POST /api/advanced-monitoring/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    b"GET /api/advanced-monitoring/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /api/advanced-monitoring/status?" + b"&".join(b"a%d=1" % i for i in range(3000)) + b" HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n\r\n",
    b"BREW /api/advanced-monitoring/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello on the plain port
], ids=["bad-chunk", "duplicate-content-length", "20k-header", "3000-parameters", "odd-method", "tls-hello"])
def test_requests_aiohttp_cannot_parse_get_the_json_error_shape(tmp_path: Path, request_bytes: bytes,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with running_api(tmp_path / "p.db") as api:
        status_line, headers, body = _split(api.raw_exchange(request_bytes))
        assert status_line.endswith(b"400 Bad Request"), status_line
        assert headers["content-type"].startswith("application/json") and headers["server"] == "pmon", headers
        assert body["status"] == 400 and body["error"] and "\n" not in body["error"], body
        _no_500s(api)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize(("encoding", "body"), [
    ("gzip", gzip.compress(b'{"level": "info", "message": "m"}')[:-4] + b"XXXX"),  # a wrong checksum
    ("gzip", b"not gzip at all"),
    ("deflate", b"not deflate either"),
])
def test_a_body_that_does_not_decompress_is_400(tmp_path: Path, encoding: str, body: bytes,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with running_api(tmp_path / "p.db") as api:
        reply = api.post("/plugins/web/logs", raw=body, headers={"Content-Encoding": encoding})
        assert reply.status == 400 and reply.body["field"] == "body" and encoding in reply.body["error"], reply.body
        _no_500s(api)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def _wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_client_hanging_up_mid_body_is_not_a_server_error(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with running_api(tmp_path / "p.db") as api:
        for framing in (b"Content-Length: 100\r\n\r\n{\"level\"", b"Transfer-Encoding: chunked\r\n\r\n4\r\n{\"le\r\n"):
            with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
                sock.sendall(b"POST /api/advanced-monitoring/plugins/web/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\n" + framing)
                time.sleep(0.2)  # the route is reading the body by now
        assert _wait_for(lambda: api.get("/status").body["api"]["responses_4xx"] == 2)
        _no_500s(api)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_lone_surrogate_in_a_subscribe_message_is_an_error_message_and_the_stream_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with running_api(tmp_path / "p.db") as api:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(api.url + stream.PATH) as ws:
                assert (await ws.receive_json(timeout=5))["type"] == "hello"
                # escaped in JSON the text is ASCII; decoded, the name is a lone surrogate the socket cannot encode
                for text, field in (('{"subscribe": {"\\ud800": 1}}', "?"), ('{"subscribe": {"level": "\\udfff"}}',
                                                                             "level")):
                    await ws.send_str(text)
                    answer = await ws.receive_json(timeout=5)
                    assert answer["type"] == "error" and answer["field"] == field, answer
                await ws.send_str('{"subscribe": {"level": "error"}}')
                assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
                api.monitor.record_log("web", "error", "still streaming")
                assert (await ws.receive_json(timeout=5))["message"] == "still streaming"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_pages_of_large_records_stop_at_the_text_budget_and_the_cursor_walks_them_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A thousand logs with a megabyte of context each were one gigabyte-sized answer (3 GB of memory for 200)
    monkeypatch.setattr(api_queries, "PAGE_TEXT_BYTES", 10_000)
    with running_api(tmp_path / "p.db") as api:
        padding = "x" * 1000
        body = {
            "metrics": [{"plugin_id": "big", "metric_type": "cpu_usage", "value": i, "timestamp": 1000 + i,
                         "metadata": {"pad": padding}} for i in range(30)],
            "logs": [{"plugin_id": "big", "level": "info", "message": f"{i} {padding}"} for i in range(30)],
            "events": [{"plugin_id": "big", "event_type": "e", "description": f"{i}", "data": {"pad": padding}}
                       for i in range(30)],
            "snapshots": [{"plugin_id": "big", "custom_metrics": {"pad": padding}} for _ in range(30)]}
        body["logs"].append({"plugin_id": "big", "level": "info", "message": "y" * 50_000})  # alone over budget
        assert api.post("/batch?wait=1", body).status == 201
        for kind, expected in (("metrics", 30), ("logs", 31), ("events", 30), ("snapshots", 30)):
            seen, cursor, pages = [], None, 0
            while True:
                reply = api.get(f"/plugins/big/{kind}?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
                assert reply.status == 200, reply.body
                items = reply.body["items"]
                assert 1 <= len(items) <= 11, (kind, len(items))
                seen += [item["id"] for item in items]
                pages += 1
                cursor = reply.body["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) == expected and pages >= 3, (kind, seen)
        assert api.get("/plugins/nobody/logs").body == {"items": [], "count": 0, "next_cursor": None}
        _no_500s(api)


async def test_the_stream_reads_large_new_rows_in_bounded_chunks_and_delivers_them_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 logs with ~1 MB of context each, committed at once, were read in one poll: 3.4 GB, and 7 delivered in 40 s
    monkeypatch.setattr(api_queries, "PAGE_TEXT_BYTES", 10_000)
    with running_api(tmp_path / "p.db") as api:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(api.url + stream.PATH) as ws:
                hello = await ws.receive_json(timeout=5)
                for i in range(40):
                    api.monitor.record_log("big", "info", f"{i} " + "x" * 1000)
                api.monitor.flush()
                conn = api.reader()
                try:
                    chunk = stream_queries.rows_after(conn, {"logs": hello["last_ids"]["logs"]}, 5000)
                finally:
                    conn.close()
                assert 1 <= len(chunk.logs) <= 11 and chunk.more
                messages = [(await ws.receive_json(timeout=5))["message"] for _ in range(40)]
                assert [int(message.split()[0]) for message in messages] == list(range(40))
