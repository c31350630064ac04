"""The live stream over a real WebSocket: what any process records reaches the clients that asked for it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_helpers import Api, running_api

from pmon.api import stream
from pmon.store.stream_queries import newest_ids

HOSTILE = "[bold red]not markup[/] \x1b[31mred\x1b[0m \x1b]52;c;aGVsbG8=\x07 \x1b[2J\r\n\ttab \u202eRLO \x00nul"

CHILD = """
import sys, time
from pmon.monitor import Monitor
monitor = Monitor(sys.argv[1], flush_interval=0.05)
monitor.record_log("child", "warning", "written by another process")
monitor.flush()
print(repr(time.time()), flush=True)
monitor.stop_monitoring()
"""


async def connect(session: aiohttp.ClientSession, api: Api, query: str = "") -> tuple[Any, dict[str, Any]]:
    """A stream client and its hello."""
    ws = await session.ws_connect(api.url + stream.PATH + query)
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello", hello
    return ws, hello


def stored_ids(api: Api) -> dict[str, int]:
    conn = api.reader()
    try:
        return newest_ids(conn)
    finally:
        conn.close()


async def settles(counters: Any, clients: int) -> int:
    """``stream_clients`` once it reaches ``clients`` (or after 3 s): a closing socket takes a moment to count."""
    for _ in range(150):
        if counters.stream_clients == clients:
            break
        await asyncio.sleep(0.02)
    return counters.stream_clients


async def caught_up(ws: Any, filters: dict[str, Any], ids: dict[str, int]) -> list[dict[str, Any]]:
    """Every message sent before the stream had handed out the rows up to ``ids``.

    A ``subscribe`` with unchanged filters is a barrier: its answer is queued
    behind every row already matched, and its ``last_ids`` say how far the
    stream has got. So whatever arrived before an answer that has reached
    ``ids`` is all the client will ever get of those rows.
    """
    received: list[dict[str, Any]] = []
    for _ in range(100):
        await ws.send_json({"subscribe": filters})
        while (message := await ws.receive_json(timeout=5))["type"] != "subscribed":
            received.append(message)
        if all(message["last_ids"][kind] >= last for kind, last in ids.items()):
            return received
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stream never reached {ids}")


async def test_a_log_recorded_by_another_process_arrives_within_a_second(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect(session, api)
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(api.db),
                                                         stdout=asyncio.subprocess.PIPE)
            message = await ws.receive_json(timeout=30)
            received_at = time.time()
            out, _ = await child.communicate()
            flushed_at = float(out)
            assert child.returncode == 0
            assert (message["type"], message["plugin_id"], message["level"], message["message"]) == (
                "log", "child", "warning", "written by another process")
            assert received_at - flushed_at < 1.0


async def test_the_stream_starts_now_not_with_history(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        api.monitor.record_log("web", "info", "before")
        api.monitor.record_event("web", "deploy", "before")
        api.monitor.flush()
        async with aiohttp.ClientSession() as session:
            ws, hello = await connect(session, api)
            assert hello["filters"] == {"kinds": ["logs", "events"], "plugin": None, "level": None,
                                        "severity": None, "metric_type": None}
            assert hello["last_ids"] == {"logs": 1, "events": 1}
            api.monitor.record_log("web", "info", "after")
            api.monitor.flush()
            message = await ws.receive_json(timeout=5)
            assert (message["type"], message["id"], message["message"]) == ("log", 2, "after")


async def test_plugin_level_and_severity_filters_send_only_matching_rows(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        m = api.monitor
        async with aiohttp.ClientSession() as session:
            query = "?plugin=web&plugin=db,cache&level=warning&severity=high"
            ws, hello = await connect(session, api, query)
            assert hello["filters"]["plugin"] == ["cache", "db", "web"]
            m.record_log("web", "info", "too low")
            m.record_log("web", "error", "web error")
            m.record_log("other", "critical", "other plugin")
            m.record_log("db", "warning", "db warning")
            m.record_log("web-2", "error", "a prefix is not the plugin")
            m.record_event("web", "slow", "too mild", "medium")
            m.record_event("cache", "evict", "cache critical", "critical")
            m.record_event("other", "boom", "other plugin", "critical")
            m.record_event("web", "deploy", "web high", "high")
            m.record_metric("web", "cpu_usage", 50.0)
            m.flush()
            ids = stored_ids(api)
            filters = {"plugin": ["web", "db", "cache"], "level": "warning", "severity": "high"}
            received = await caught_up(ws, filters, {"logs": ids["logs"], "events": ids["events"]})
            assert [(got["type"], got["plugin_id"], got.get("message") or got.get("description"))
                    for got in received] == [("log", "web", "web error"), ("log", "db", "db warning"),
                                             ("event", "cache", "cache critical"), ("event", "web", "web high")]


async def test_metrics_reach_only_clients_that_subscribed_to_them(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        m = api.monitor
        async with aiohttp.ClientSession() as session:
            plain, _ = await connect(session, api)
            cpu, hello = await connect(session, api, "?kinds=metrics&metric_type=cpu_usage")
            assert hello["last_ids"] == {"metrics": 0}
            m.record_metric("web", "memory_usage", 512.0)
            m.record_metric("web", "cpu_usage", 12.5, {"core": 1})
            m.record_log("web", "info", "a log")
            m.flush()
            ids = stored_ids(api)
            got = await caught_up(cpu, {"kinds": "metrics", "metric_type": "cpu_usage"}, {"metrics": ids["metrics"]})
            [metric] = got
            assert (metric["type"], metric["plugin_id"], metric["metric_type"], metric["value"],
                    metric["metadata"]) == ("metric", "web", "cpu_usage", 12.5, {"core": 1})
            got = await caught_up(plain, {}, {"logs": ids["logs"]})
            assert [message["type"] for message in got] == ["log"]


async def test_a_subscribe_message_changes_the_filters_live(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        m = api.monitor
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect(session, api)
            await ws.send_json({"subscribe": {"plugin": "db", "level": "error", "kinds": ["logs"]}})
            answer = await ws.receive_json(timeout=5)
            assert answer["type"] == "subscribed"
            assert answer["filters"] == {"kinds": ["logs"], "plugin": ["db"], "level": "error", "severity": None,
                                         "metric_type": None}
            m.record_log("web", "error", "web error")
            m.record_log("db", "info", "db info")
            m.record_log("db", "critical", "db critical")
            m.record_event("db", "boom", "an event", "critical")
            m.flush()
            ids = stored_ids(api)
            got = await caught_up(ws, {"plugin": "db", "level": "error", "kinds": ["logs"]}, {"logs": ids["logs"]})
            assert [message["message"] for message in got] == ["db critical"]

            await ws.send_json({"subscribe": {"kinds": "metrics"}})
            answer = await ws.receive_json(timeout=5)
            assert (answer["type"], answer["last_ids"]) == ("subscribed", {"metrics": 0})
            m.record_log("db", "critical", "not wanted any more")
            m.record_metric("web", "cpu_usage", 7.0)
            m.flush()
            message = await ws.receive_json(timeout=5)
            assert (message["type"], message["value"]) == ("metric", 7.0)


async def test_malformed_messages_get_an_error_and_the_socket_stays_usable(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect(session, api, "?plugin=web")
            bad = [("not json", "message"), ("[1, 2]", "subscribe"), ('{"subscribe": 1}', "subscribe"),
                   ('{"subscribe": {}, "extra": 1}', "subscribe"), ('{"subscribe": {"colour": "red"}}', "colour"),
                   ('{"subscribe": {"level": "loud"}}', "level"), ('{"subscribe": {"kinds": "logs,pings"}}', "kinds"),
                   ('{"subscribe": {"plugin": 5}}', "plugin"), ('{"subscribe": {"plugin": ["a", 1]}}', "plugin"),
                   ('{"subscribe": {"level": ["info", "error"]}}', "level"),
                   ('{"subscribe": {"metric_type": "cpu_usage"}}', "metric_type"),
                   ("[" * 30_000 + "]" * 30_000, "message")]
            for text, field in bad:
                await ws.send_str(text)
                answer = await ws.receive_json(timeout=5)
                assert (answer["type"], answer["field"]) == ("error", field), (text[:40], answer)
                assert answer["error"]
            await ws.send_bytes(b'{"subscribe": {}}')
            assert (await ws.receive_json(timeout=5))["field"] == "message"

            api.monitor.record_log("web", "info", "still streaming, with the first filters")
            api.monitor.record_log("other", "info", "not this one")
            api.monitor.flush()
            got = await caught_up(ws, {"plugin": "web"}, {"logs": stored_ids(api)["logs"]})
            assert [message["message"] for message in got] == ["still streaming, with the first filters"]


async def test_bad_query_parameters_and_foreign_origins_are_refused_before_the_upgrade(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", cors_origins=("https://dash.example",)) as api:
        for query, status, field in (("?colour=red", 400, "colour"), ("?level=loud", 400, "level"),
                                     ("?kinds=logs,pings", 400, "kinds"), ("?level=info&level=error", 400, "level"),
                                     ("?metric_type=cpu_usage", 400, "metric_type")):
            reply = api.request("GET", stream.PATH + query)
            assert (reply.status, reply.body["field"]) == (status, field), query
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(api.url + stream.PATH + "?colour=red")
            assert refused.value.status == 400
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(api.url + stream.PATH, origin="https://evil.example")
            assert refused.value.status == 403
            ws, _ = await connect(session, api, "?plugin=web")  # the socket a refusal left behind is unharmed
            await ws.close()
            ws = await session.ws_connect(api.url + stream.PATH, origin="https://dash.example")
            assert (await ws.receive_json(timeout=5))["type"] == "hello"


async def test_a_token_is_needed_to_open_the_stream_when_one_is_set(tmp_path: Path) -> None:
    token = "s3cret-token-of-enough-length"
    with running_api(tmp_path / "p.db", token=token) as api:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(api.url + stream.PATH)
            assert refused.value.status == 401
            ws = await session.ws_connect(api.url + stream.PATH, headers={"Authorization": f"Bearer {token}"})
            assert (await ws.receive_json(timeout=5))["type"] == "hello"


async def test_clients_over_the_cap_get_503_and_a_closed_client_frees_its_slot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_CLIENTS", 2)
    with running_api(tmp_path / "p.db") as api:
        counters = api.server.ctx.counters
        async with aiohttp.ClientSession() as session:
            first, _ = await connect(session, api)
            second, _ = await connect(session, api)
            assert counters.stream_clients == 2
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(api.url + stream.PATH)
            assert refused.value.status == 503
            reply = api.request("GET", stream.PATH)
            assert reply.status == 503 and "stream clients" in reply.body["error"]
            await first.close()
            assert await settles(counters, 1) == 1
            third, _ = await connect(session, api)
            api.monitor.record_log("web", "info", "to the newcomer")
            api.monitor.flush()
            assert (await third.receive_json(timeout=5))["message"] == "to the newcomer"
        assert await settles(counters, 0) == 0


async def test_a_client_that_never_reads_does_not_hold_up_another_and_learns_what_it_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "QUEUE_MESSAGES", 50)
    per_round, size = 40, 60_000
    with running_api(tmp_path / "p.db") as api:
        hub = api.server.ctx.stream
        async with aiohttp.ClientSession() as session:
            slow, _ = await connect(session, api)
            fast, _ = await connect(session, api)
            recorded, fast_ids = 0, []
            # Rounds the fast client keeps up with, until the slow one's socket buffers and queue overflow
            # (a few MB of kernel buffers come first; the hub's counter is only read to know when to stop).
            for _ in range(60):
                for i in range(per_round):
                    api.monitor.record_log("web", "info", f"{recorded + i:06d} " + "x" * size)
                recorded += per_round
                api.monitor.flush()
                while len(fast_ids) < recorded:
                    message = await fast.receive_json(timeout=5)
                    assert message["type"] == "log", message["type"]
                    fast_ids.append(int(message["message"][:6]))
                if any(client.dropped for client in list(hub.clients)):
                    break
            assert fast_ids == list(range(recorded))

            slow_ids, dropped = [], 0
            while len(slow_ids) + dropped < recorded:
                message = await slow.receive_json(timeout=5)
                if message["type"] == "dropped":
                    dropped += message["count"]
                else:
                    slow_ids.append(int(message["message"][:6]))
            assert dropped > 0
            assert slow_ids == sorted(slow_ids) and slow_ids[-1] == recorded - 1
            assert len(slow_ids) + dropped == recorded


async def test_hostile_text_arrives_byte_for_byte_as_json_data(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect(session, api)
            api.monitor.record_log("web", "error", HOSTILE, {"note": HOSTILE}, traceback=HOSTILE)
            api.monitor.record_event("web", "deploy", HOSTILE, "high", {"note": HOSTILE})
            api.monitor.flush()
            frames = [await ws.receive(timeout=5) for _ in range(2)]
            assert all("\x1b" not in frame.data and "\x07" not in frame.data for frame in frames)
            log, event = (json.loads(frame.data) for frame in frames)
            assert log["message"] == log["traceback"] == log["context"]["note"] == HOSTILE
            assert event["description"] == event["data"]["note"] == HOSTILE


async def test_a_stream_stays_open_past_the_request_timeout(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db", request_timeout=0.5) as api:
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect(session, api)
            await asyncio.sleep(2.5)  # the idle sweep runs every second
            api.monitor.record_log("web", "info", "still here")
            api.monitor.flush()
            assert (await ws.receive_json(timeout=5))["message"] == "still here"
            assert api.server.ctx.counters.timed_out_connections == 0


async def test_a_client_that_stops_answering_pings_is_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.3)
    with running_api(tmp_path / "p.db") as api:
        counters = api.server.ctx.counters
        async with aiohttp.ClientSession() as session:
            silent = await session.ws_connect(api.url + stream.PATH, autoping=False)
            assert await settles(counters, 0) == 0
            await silent.close()


async def test_stopping_the_server_closes_every_client_with_going_away(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        async with aiohttp.ClientSession() as session:
            clients = [(await connect(session, api))[0] for _ in range(3)]
            started = time.monotonic()
            stopping = asyncio.create_task(asyncio.to_thread(api.server.stop))
            closes = await asyncio.gather(*(ws.receive(timeout=5) for ws in clients))
            await stopping
            assert time.monotonic() - started < 1.5
            assert [(message.type, message.data) for message in closes] == [(aiohttp.WSMsgType.CLOSE, 1001)] * 3
