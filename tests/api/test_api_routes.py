"""Every route over real HTTP against a real store: what is POSTed is stored, what is stored is served."""

from __future__ import annotations

import time
from pathlib import Path

from api_helpers import PREFIX, running_api

from pmon.store import queries


def test_each_single_post_is_stored_and_read_back(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        assert api.post("/plugins/web/metrics?wait=1", {"metric_type": "cpu_usage", "value": 12.5,
                                                        "metadata": {"core": 1}}).status == 201
        assert api.post("/plugins/web/logs?wait=1", {"level": "error", "message": "boom", "context": {"user": 7},
                                                     "traceback": "Traceback ...\nValueError"}).status == 201
        assert api.post("/plugins/web/events?wait=1", {"event_type": "deploy", "description": "v2 out",
                                                       "severity": "high", "data": {"version": 2}}).status == 201
        assert api.post("/plugins/web/snapshots?wait=1", {"cpu_usage": 4, "request_count": 9,
                                                          "disk_io": {"read": 1}}).status == 201
        reply = api.post("/plugins/web/metrics", {"metric_type": "custom.queue_depth", "value": 3,
                                                  "timestamp": "2026-01-02T03:04:05Z"})
        assert (reply.status, reply.body) == (202, {"accepted": 1})
        api.monitor.flush()
        conn = api.reader()
        [log] = queries.logs(conn, plugin_id="web")
        assert (log.message, log.context, log.traceback) == ("boom", {"user": 7}, "Traceback ...\nValueError")
        [event] = queries.events(conn, plugin_id="web")
        assert (event.event_type, event.severity, event.data) == ("deploy", "high", {"version": 2})
        [snap] = queries.snapshots(conn, plugin_id="web")
        assert (snap.cpu_usage, snap.request_count, snap.disk_io) == (4.0, 9, {"read": 1})
        custom = queries.series(conn, "web", "custom.queue_depth", 1767323000, 1767324000, points=1)
        assert [p.avg for p in custom] == [3.0]
        conn.close()

        metrics = api.get("/plugins/web/metrics").body["items"]
        assert {(m["metric_type"], m["value"]) for m in metrics} == {("cpu_usage", 12.5), ("custom.queue_depth", 3)}
        assert api.get("/plugins/web/logs").body["items"][0]["context"] == {"user": 7}
        assert api.get("/plugins/web/events").body["items"][0]["data"] == {"version": 2}
        assert api.get("/plugins/web/snapshots").body["items"][0]["request_count"] == 9


def test_a_batch_records_every_kind_for_many_plugins(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        body = {"metrics": [{"plugin_id": f"p{i % 3}", "metric_type": "response_time", "value": i}
                            for i in range(300)],
                "logs": [{"plugin_id": "p0", "level": "info", "message": f"line {i}"} for i in range(20)],
                "events": [{"plugin_id": "p1", "event_type": "tick", "description": "t"}],
                "snapshots": [{"plugin_id": "p2", "cpu_usage": 1.5}]}
        reply = api.post("/batch?wait=true", body)
        assert reply.status == 201
        assert reply.body["accepted"] == {"metrics": 300, "logs": 20, "events": 1, "snapshots": 1}
        counts = queries.row_counts(api.reader())
        assert (counts["metrics"], counts["logs"], counts["events"], counts["snapshots"]) == (300, 20, 1, 1)


def test_pages_follow_the_cursor_newest_first_without_gaps_or_repeats(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        now = time.time()
        api.post("/batch?wait=1", {
            "logs": [{"plugin_id": "web", "level": "info", "message": f"m{i}", "timestamp": now - 250 + i}
                     for i in range(250)],
            # many points share one timestamp: the (time, id) cursor must still page through them
            "metrics": [{"plugin_id": "web", "metric_type": "cpu_usage", "value": i, "timestamp": now - (i // 50)}
                        for i in range(230)]})
        for path, total in (("/plugins/web/logs?limit=100", 250), ("/plugins/web/metrics?limit=100", 230)):
            seen, cursor, pages = [], None, 0
            while True:
                reply = api.get(path + (f"&cursor={cursor}" if cursor else ""))
                assert reply.status == 200, reply.body
                seen += [item["id"] for item in reply.body["items"]]
                pages += 1
                cursor = reply.body["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) == total, path
            assert pages == 3
        times = [item["timestamp"] for item in api.get("/plugins/web/logs?limit=5").body["items"]]
        assert times == sorted(times, reverse=True)


def test_filters_select_by_level_severity_text_time_and_metric(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        now = time.time()
        api.post("/batch?wait=1", {
            "logs": [{"plugin_id": "web", "level": level, "message": f"{level} 100%_done", "timestamp": now - age}
                     for age, level in ((30, "debug"), (20, "warning"), (10, "error"))],
            "events": [{"plugin_id": "web", "event_type": "e", "description": sev, "severity": sev}
                       for sev in ("info", "medium", "critical")],
            "metrics": [{"plugin_id": "web", "metric_type": m, "value": 1} for m in ("cpu_usage", "memory_usage")]})
        levels = [e["level"] for e in api.get("/plugins/web/logs?level=warning").body["items"]]
        assert levels == ["error", "warning"]
        assert [e["level"] for e in api.get("/plugins/web/logs?q=100%25_").body["items"]] == ["error", "warning",
                                                                                              "debug"]
        assert api.get("/plugins/web/logs?q=%25%25").body["items"] == []  # % is literal, not a wildcard
        assert [e["level"] for e in api.get(f"/plugins/web/logs?since={now - 25}&until={now - 15}").body["items"]] \
            == ["warning"]
        assert [e["level"] for e in api.get("/plugins/web/logs?since=25s").body["items"]] == ["error", "warning"]
        severities = [e["severity"] for e in api.get("/plugins/web/events?severity=MEDIUM").body["items"]]
        assert severities == ["critical", "medium"]
        assert {m["metric_type"] for m in api.get("/plugins/web/metrics?metric_type=memory_usage").body["items"]} \
            == {"memory_usage"}
        assert api.get("/plugins/other/logs").body == {"items": [], "count": 0, "next_cursor": None}


def test_plugins_summary_status_and_analytics(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        now = time.time()
        api.post("/batch?wait=1", {
            "metrics": [{"plugin_id": "api", "metric_type": "response_time", "value": float(v),
                         "timestamp": now - 60 + v / 10} for v in range(1, 101)],
            "logs": [{"plugin_id": "api", "level": "error", "message": "e"}]})
        plugins = api.get("/plugins").body
        assert [p["plugin_id"] for p in plugins["plugins"]] == ["api"]
        assert plugins["plugins"][0]["latest"]["response_time"]["value"] == 100.0
        summary = api.get("/plugins/api/summary").body
        assert summary["status"] == "active" and summary["errors_last_hour"] == 1
        assert summary["statistics"]["requests"] == 100 and summary["statistics"]["p99_ms"] == 99.0
        missing = api.get("/plugins/ghost/summary")
        assert missing.status == 404 and missing.body["field"] == "plugin_id"

        performance = api.get("/analytics/performance?since=1h").body
        assert performance["overall"]["p50_ms"] == 50.0 and performance["plugins"][0]["plugin_id"] == "api"
        trends = api.get("/analytics/trends").body["trends"]
        assert [(t["plugin_id"], t["metric"], t["count"]) for t in trends] == [("api", "response_time", 100)]
        trend = api.get("/analytics/trends?plugin=api&metric=response_time&points=10&since=2m").body
        assert sum(b["count"] for b in trend["buckets"]) == 100
        assert api.get("/analytics/trends?metric=response_time").status == 400

        status = api.get("/status").body
        assert status["rows_written"]["metrics"] == 100
        assert status["api"]["requests"] >= 8 and status["api"]["responses_4xx"] == 2
        assert status["api"]["listen"] == api.url


def test_large_responses_are_gzipped_only_for_clients_that_accept_it(tmp_path: Path) -> None:
    with running_api(tmp_path / "p.db") as api:
        api.post("/batch?wait=1", {"logs": [{"plugin_id": "web", "level": "info", "message": "x" * 100}] * 200})
        zipped = api.get("/plugins/web/logs?limit=200", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers.get("Content-Encoding") == "gzip"
        assert zipped.body["count"] == 200 and len(zipped.raw) < 5000
        plain = api.get("/plugins/web/logs?limit=200", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers and plain.body["count"] == 200
        small = api.get("/plugins/web/logs?limit=1", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in small.headers


def test_recorded_text_comes_back_unchanged(tmp_path: Path) -> None:
    hostile = "[bold red]x[/] [@click=app.quit]q[/] \x1b[31mred\x1b]52;c;aGk=\x07 \u202e \r\x00"
    with running_api(tmp_path / "p.db") as api:
        assert api.post("/plugins/web/logs?wait=1", {"level": "info", "message": hostile}).status == 201
        assert api.get("/plugins/web/logs").body["items"][0]["message"] == hostile


def test_every_route_is_under_the_seed_prefix() -> None:
    from aiohttp import web

    from pmon.api import routes_read, routes_write

    app = web.Application()
    routes_read.add_routes(app)
    routes_write.add_routes(app)
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert paths and all(p.startswith(PREFIX) for p in paths)
