"""Client mistakes get a 4xx JSON body naming the field; nothing is half-recorded; the next request is served."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from api_helpers import PREFIX, Api, running_api

from pmon.store import queries


def _assert_served(api: Api) -> None:
    assert api.get("/status").status == 200


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"metric_type": "cpu_usage"}, "value", "missing"),
    ({"metric_type": "cpu_usage", "value": "12"}, "value", "not a number"),
    ({"metric_type": "cpu_usage", "value": True}, "value", "not a number"),
    ('{"metric_type": "cpu_usage", "value": 1e999}', "value", "not finite"),
    ('{"metric_type": "cpu_usage", "value": Infinity}', "body", "Infinity"),
    ({"metric_type": "cpu", "value": 1}, "metric_type", "custom metrics"),
    ({"metric_type": "cpu_usage", "value": 1, "colour": "red"}, "colour", "unknown field"),
    ({"metric_type": "cpu_usage", "value": 1, "metadata": [1]}, "metadata", "object"),
    ({"metric_type": "cpu_usage", "value": 1, "timestamp": "yesterday"}, "timestamp", "ISO 8601"),
    ({"metric_type": "cpu_usage", "value": 1, "timestamp": -5}, "timestamp", "1970"),
    ({"metric_type": "cpu_usage", "value": 1, "plugin_id": "other"}, "plugin_id", "differs"),
    ([1, 2], "body", "object"),
])
def test_bad_metric_bodies_are_400_naming_the_field(tmp_path: Path, body: object, field: str, words: str) -> None:
    with running_api(tmp_path / "p.db") as api:
        reply = api.post("/plugins/web/metrics", raw=body.encode()) if isinstance(body, str) else \
            api.post("/plugins/web/metrics", body)
        assert reply.status == 400, reply.body
        assert reply.body["field"] == field and words in reply.body["error"], reply.body
        _assert_served(api)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/plugins/web/logs", {"level": "loud", "message": "m"}, "level"),
    ("/plugins/web/logs", {"level": "info", "message": 5}, "message"),
    ("/plugins/web/logs", {"level": "info"}, "message"),
    ("/plugins/web/events", {"event_type": "", "description": "d"}, "event_type"),
    ("/plugins/web/events", {"event_type": "x", "description": "d", "severity": "dire"}, "severity"),
    ("/plugins/web/snapshots", {"cpu_usage": float("nan")}, "body"),
    ("/plugins/web/snapshots", {"colour": 1}, "colour"),
    ("/plugins/bad%20id/logs", {"level": "info", "message": "m"}, "plugin_id"),
])
def test_bad_log_event_snapshot_bodies_are_400(tmp_path: Path, path: str, body: object, field: str) -> None:
    with running_api(tmp_path / "p.db") as api:
        raw = json.dumps(body).encode()  # NaN is written as the bare word, which JSON does not allow
        reply = api.post(path, raw=raw)
        assert reply.status == 400 and reply.body["field"] == field, reply.body


def test_malformed_json_empty_bodies_and_deep_nesting_are_400(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        for raw, field in ((b"{not json", "body"), (b"", "body"), (b"\xff\xfe", "body"),
                           (b"[" * 100_000 + b"]" * 100_000, "body"),
                           (json.dumps({"metric_type": "cpu_usage", "value": 1,
                                        "metadata": _nested(40)}).encode(), "metadata")):
            reply = api.post("/plugins/web/metrics", raw=raw)
            assert reply.status == 400 and reply.body["field"] == field, (raw[:20], reply.body)
        assert api.post("/plugins/web/metrics", raw=b"a=1", headers={"Content-Type": "text/plain"}).status == 415
        _assert_served(api)


def test_lone_surrogates_in_names_and_values_are_400_or_stored_never_500(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        reply = api.post("/plugins/web/metrics", raw=b'{"metric_type": "cpu_usage", "value": 1, "\\ud800": 2}')
        assert reply.status == 400 and reply.body["field"] == "?"
        reply = api.post("/plugins/web/logs?wait=1", raw=b'{"level": "info", "message": "a\\ud800b"}')
        assert reply.status == 201
        message = api.get("/plugins/web/logs").body["items"][0]["message"]
        assert message.startswith("a\ufffd") and message.endswith("\ufffdb")  # stored scrubbed, as the Python API does
        assert api.get("/status").body["api"]["responses_5xx"] == 0


def _nested(depth: int) -> dict:
    node: dict = {}
    for _ in range(depth):
        node = {"x": node}
    return node


def test_a_batch_with_one_bad_record_records_nothing(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        metrics = [{"plugin_id": "web", "metric_type": "cpu_usage", "value": i} for i in range(10)]
        metrics[7]["value"] = None
        reply = api.post("/batch?wait=1", {"metrics": metrics, "logs": [{"plugin_id": "web", "level": "info",
                                                                        "message": "ok"}]})
        assert reply.status == 400 and reply.body["field"] == "metrics[7].value"
        for body, field in (({"metrics": [{"metric_type": "cpu_usage", "value": 1}]}, "metrics[0].plugin_id"),
                            ({"metric": []}, "metric"), ({"logs": {}}, "logs"), ({}, "body"),
                            ({"events": [{"plugin_id": "w", "event_type": "x"}]}, "events[0].description")):
            reply = api.post("/batch", body)
            assert reply.status == 400 and reply.body["field"] == field, reply.body
        api.monitor.flush()
        counts = queries.row_counts(api.reader())
        assert counts["metrics"] == counts["logs"] == 0


def test_bodies_over_the_cap_are_413_whether_announced_or_not(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", max_body_bytes=10_000, max_batch_records=50) as api:
        big = {"logs": [{"plugin_id": "web", "level": "info", "message": "x" * 100}] * 200}
        reply = api.post("/batch", big)
        assert reply.status == 413 and "max_body_bytes" in reply.body["error"]
        many = {"metrics": [{"plugin_id": "w", "metric_type": "cpu_usage", "value": 1}] * 51}
        assert api.post("/batch", many).status == 413
        # a chunked body announces no length: the cap applies while it is read
        chunks = b"".join(b"%x\r\n%s\r\n" % (1000, b"x" * 1000) for _ in range(20)) + b"0\r\n\r\n"
        answer = api.raw_exchange(b"POST " + PREFIX.encode() + b"/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        _assert_served(api)


def test_a_lying_content_length_times_out_or_is_refused_and_the_server_goes_on(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", request_timeout=1.0) as api:
        body = b'{"metric_type": "cpu_usage", "value": 1}'
        head = (f"POST {PREFIX}/plugins/web/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\n").encode()
        # announces more than it sends: the body deadline answers 408
        started = time.monotonic()
        answer = api.raw_exchange(head + f"Content-Length: {len(body) + 50}\r\n\r\n".encode() + body, timeout=8)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert time.monotonic() - started < 6
        # announces less than it sends: the rest is a garbled next request, answered 400 (by aiohttp's
        # parser, before any route) and closed
        answer = api.raw_exchange(head + b"Content-Length: 10\r\n\r\n" + body, timeout=8)
        assert b" 400 Bad Request" in answer.split(b"\r\n\r\n")[-2] or b"HTTP/1.0 400" in answer, answer
        # announces more than the cap: refused before reading
        answer = api.raw_exchange(head + b"Content-Length: 99999999999\r\n\r\n", timeout=8)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        _assert_served(api)


def test_unknown_routes_methods_and_query_parameters_are_json_errors(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        missing = api.request("GET", "/nope")
        assert missing.status == 404 and missing.body["error"].startswith("no route")
        assert missing.headers["Content-Type"].startswith("application/json")
        wrong = api.request("DELETE", PREFIX + "/plugins")
        assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
        for path, field in (("/plugins/web/logs?levle=error", "levle"), ("/plugins/web/logs?limit=0", "limit"),
                            ("/plugins/web/logs?limit=5000", "limit"), ("/plugins/web/logs?level=loud", "level"),
                            ("/plugins/web/logs?cursor=abc", "cursor"), ("/plugins/web/logs?since=soon", "since"),
                            ("/plugins/web/logs?since=1h&until=2h", "until"),
                            ("/plugins/web/metrics?cursor=12", "cursor"),
                            ("/plugins/web/logs?q=%27%20OR%201%3D1%20--", None)):
            reply = api.get(path)
            if field is None:
                assert reply.status == 200 and reply.body["items"] == []
            else:
                assert reply.status == 400 and reply.body["field"] == field, (path, reply.body)


def test_a_full_buffer_is_503_and_takes_nothing(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", monitor_settings={"max_buffer": 50}) as api:
        many = {"metrics": [{"plugin_id": "w", "metric_type": "cpu_usage", "value": 1}] * 60}
        reply = api.post("/batch", many)
        assert reply.status == 503 and reply.headers["Retry-After"] == "1"
        assert api.get("/status").body["api"]["rejected_full"] == 60
        assert api.post("/batch?wait=1", {"metrics": many["metrics"][:40]}).status == 201


async def test_two_hundred_concurrent_connections_are_all_served_and_stored(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(i: int) -> int:
                async with session.post(f"{api.url}{PREFIX}/plugins/p{i % 10}/metrics",
                                        json={"metric_type": "cpu_usage", "value": i}) as resp:
                    await resp.read()
                    return resp.status

            statuses = await asyncio.gather(*(one(i) for i in range(200)))
        assert statuses == [202] * 200
        api.monitor.flush()
        assert queries.row_counts(api.reader())["metrics"] == 200
        values = sorted(m["value"] for p in range(10) for m in api.get(f"/plugins/p{p}/metrics").body["items"])
        assert values == list(range(200))


def test_a_client_trickling_its_headers_is_cut_off_after_the_timeout(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", request_timeout=1.0) as api:
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET " + PREFIX.encode() + b"/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            closed = False
            while time.monotonic() - started < 15 and not closed:  # a header line every 0.3 s, never the end
                time.sleep(0.3)
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    sock.settimeout(0.01)
                    closed = sock.recv(100) == b""
                except TimeoutError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            waited = time.monotonic() - started
        assert closed and waited < 10, waited  # request_timeout 1 s + a 1 s sweep, on a busy machine
        assert api.get("/status").body["api"]["timed_out_connections"] == 1


def test_gzip_bodies_are_accepted_and_the_cap_applies_after_decompression(tmp_path: Path) -> None:
    import gzip

    with running_api(tmp_path / "p.db", max_body_bytes=20_000) as api:
        body = json.dumps({"metrics": [{"plugin_id": "a", "metric_type": "cpu_usage", "value": 1}] * 10}).encode()
        reply = api.post("/batch?wait=1", raw=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        assert reply.status == 201 and reply.body["accepted"]["metrics"] == 10
        bomb = gzip.compress(json.dumps({"logs": [{"plugin_id": "a", "level": "info", "message": "x" * 10_000}]
                                         * 100}).encode())
        assert len(bomb) < 20_000
        reply = api.post("/batch", raw=bomb, headers={"Content-Encoding": "gzip"})
        assert reply.status == 413
        _assert_served(api)


def test_a_request_count_beyond_64_bits_is_400_and_takes_nothing_of_the_batch(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        body = {"metrics": [{"plugin_id": "web", "metric_type": "cpu_usage", "value": 1}],
                "snapshots": [{"plugin_id": "web", "request_count": 2**63}]}
        reply = api.post("/batch?wait=1", body)
        assert reply.status == 400 and reply.body["field"] == "snapshots[0].request_count"
        api.monitor.flush()
        assert queries.row_counts(api.reader())["metrics"] == 0


def test_new_plugin_ids_past_the_monitors_cap_are_refused_not_dropped(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pmon import validate

    monkeypatch.setattr(validate, "MAX_PLUGIN_IDS", 3)
    with running_api(tmp_path / "p.db") as api:
        for name in ("a", "b", "c"):
            assert api.post(f"/plugins/{name}/metrics", {"metric_type": "cpu_usage", "value": 1}).status == 202
        refused = api.post("/plugins/d/metrics", {"metric_type": "cpu_usage", "value": 1})
        assert refused.status == 400 and refused.body["field"] == "plugin_id" and "distinct" in refused.body["error"]
        batch = api.post("/batch", {"metrics": [{"plugin_id": "a", "metric_type": "cpu_usage", "value": 2},
                                                {"plugin_id": "e", "metric_type": "cpu_usage", "value": 2}]})
        assert batch.status == 400 and batch.body["field"] == "metrics[1].plugin_id"
        assert api.post("/plugins/a/metrics", {"metric_type": "cpu_usage", "value": 3}).status == 202
