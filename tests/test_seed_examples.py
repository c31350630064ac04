"""The seed's usage and alert examples run unchanged (import line aside) and land in its tables."""

from __future__ import annotations

import json
from pathlib import Path

from sqlite_rows import rows

from pmon import LogLevel, MetricType, Monitor


def test_seed_usage_examples_land_in_the_seed_tables(db_path: Path) -> None:
    advanced_plugin_monitor = Monitor(db_path, flush_interval=0.05)
    alerts = []

    # 모니터링 시작 / 알림 콜백 등록
    advanced_plugin_monitor.start_monitoring()

    def alert_callback(event):
        alerts.append(f"알림: {event.description}")

    advanced_plugin_monitor.add_alert_callback(alert_callback)

    # 1. 메트릭 기록
    advanced_plugin_monitor.record_metric(
        plugin_id="my_plugin",
        metric_type=MetricType.CPU_USAGE,
        value=45.2,
        metadata={"source": "custom_monitor"}
    )
    advanced_plugin_monitor.record_metric(
        plugin_id="my_plugin",
        metric_type=MetricType.RESPONSE_TIME,
        value=125.5,
        metadata={"endpoint": "/api/data"}
    )
    # 2. 로그 기록
    advanced_plugin_monitor.record_log(
        plugin_id="my_plugin",
        level=LogLevel.INFO,
        message="플러그인이 성공적으로 시작되었습니다.",
        context={"version": "1.0.0"}
    )
    advanced_plugin_monitor.record_log(
        plugin_id="my_plugin",
        level=LogLevel.ERROR,
        message="데이터베이스 연결 실패",
        context={"db_host": "localhost"},
        traceback="Traceback (most recent call last):..."
    )
    # 3. 이벤트 기록
    advanced_plugin_monitor.record_event(
        plugin_id="my_plugin",
        event_type="startup",
        description="플러그인 시작",
        severity="info",
        data={"version": "1.0.0", "config": {"retries": 3}}
    )
    advanced_plugin_monitor.record_event(
        plugin_id="my_plugin",
        event_type="error",
        description="치명적인 오류 발생",
        severity="critical",
        data={"error_code": "E001", "details": {"table": "users"}}
    )
    # 4. 성능 스냅샷 생성
    snapshot_data = {
        'cpu_usage': 45.2,
        'memory_usage': 67.8,
        'response_time': 125.5,
        'error_rate': 0.02,
        'request_count': 1500,
        'throughput': 25.3,
        'disk_io': {'read_bytes': 1024000, 'write_bytes': 512000},
        'network_io': {'rx_bytes': 2048000, 'tx_bytes': 1024000},
        'custom_metrics': {'custom_metric_1': 42.5}
    }
    advanced_plugin_monitor.create_snapshot("my_plugin", snapshot_data)

    # 디버깅: 캐시 상태 확인
    assert len(advanced_plugin_monitor.metrics_cache) == 2
    assert len(advanced_plugin_monitor.logs_cache) == 2

    assert advanced_plugin_monitor.flush()
    assert advanced_plugin_monitor.wait_for_alerts()
    advanced_plugin_monitor.stop_monitoring()

    assert rows(db_path, "SELECT plugin_id, metric_type, value, metadata FROM plugin_metrics ORDER BY id") == [
        ("my_plugin", "cpu_usage", 45.2, '{"source": "custom_monitor"}'),
        ("my_plugin", "response_time", 125.5, '{"endpoint": "/api/data"}'),
    ]
    logs = rows(db_path, "SELECT plugin_id, level, message, context, traceback FROM plugin_logs ORDER BY id")
    assert logs == [
        ("my_plugin", "info", "플러그인이 성공적으로 시작되었습니다.", '{"version": "1.0.0"}', None),
        ("my_plugin", "error", "데이터베이스 연결 실패", '{"db_host": "localhost"}', "Traceback (most recent call last):..."),
    ]
    events = rows(db_path, "SELECT event_type, description, severity, data, category FROM plugin_events ORDER BY id")
    assert [e[:3] for e in events] == [("startup", "플러그인 시작", "info"), ("error", "치명적인 오류 발생", "critical")]
    assert json.loads(events[1][3]) == {"error_code": "E001", "details": {"table": "users"}}
    assert [e[4] for e in events] == ["system", "error"]
    snap = rows(db_path, "SELECT cpu_usage, memory_usage, response_time, error_rate, request_count, throughput, "
                         "disk_io, network_io, custom_metrics FROM performance_snapshots")
    assert snap[0][:6] == (45.2, 67.8, 125.5, 0.02, 1500, 25.3)
    assert json.loads(snap[0][6]) == {"read_bytes": 1024000, "write_bytes": 512000}
    assert json.loads(snap[0][8]) == {"custom_metric_1": 42.5}
    # only the critical event reached the callback (default threshold: high)
    assert alerts == ["알림: 치명적인 오류 발생"]


def test_seed_alert_example_compares_severity_to_strings(monitor: Monitor) -> None:
    sent = []

    def custom_alert_callback(event):
        if event.severity == 'critical':
            sent.append(("email", event.description))
        elif event.severity == 'high':
            sent.append(("slack", event.description))

    monitor.add_alert_callback(custom_alert_callback)
    monitor.record_event("my_plugin", "error", "disk failing", "high")
    monitor.record_event("my_plugin", "error", "disk gone", "critical")
    monitor.record_event("my_plugin", "error", "disk slow", "medium")
    assert monitor.wait_for_alerts()
    assert sent == [("slack", "disk failing"), ("email", "disk gone")]


def test_default_monitor_is_the_seed_alias() -> None:
    import pmon

    assert pmon.advanced_plugin_monitor is pmon.monitor
    assert isinstance(pmon.monitor, pmon.Monitor)
    assert pmon.AdvancedPluginMonitor is pmon.Monitor


def test_timestamps_read_as_utc_text_through_the_views(monitor: Monitor, db_path: Path) -> None:
    monitor.record_log("my_plugin", "info", "backfilled", timestamp=1_700_000_000.25)
    assert monitor.flush()
    assert rows(db_path, "SELECT time_utc, message FROM plugin_logs_utc") == [("2023-11-14 22:13:20.250", "backfilled")]
