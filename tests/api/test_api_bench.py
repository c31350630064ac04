"""`pmon bench --api` in miniature: a real daemon, a spawned load generator, every row present and sane.

No timing assertions: the machine is shared and noisy; the figures only have to exist, be positive and come
from loads that met no errors.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("aiohttp")

from pmon.api.api_bench import Ticks, run_api_bench, schedule  # noqa: E402


def test_schedule_counts_late_and_skipped_ticks_inside_the_window_only() -> None:
    starts = [100.0, 101.0, 102.3, 104.3, 105.3, 110.0]
    ticks = Ticks(starts, [(t + 0.002, ms) for t, ms in zip(starts, (2.0, 3.0, 2.0, 40.0, 2.0, 900.0))])
    figures = schedule(ticks, (100.0, 105.5), interval=1.0)
    assert figures.ticks == 5
    assert figures.worst_gap_ms == pytest.approx(2000.0)
    assert (figures.late, figures.skipped) == (1, 1)  # 1.3 s is late; 2.0 s skipped one tick
    assert (figures.median_tick_ms, figures.max_tick_ms) == (2.0, 40.0)


@pytest.mark.slow
def test_a_tiny_api_bench_gives_every_row_from_an_error_free_load() -> None:
    messages: list[str] = []
    results = run_api_bench(repeats=1, batch_requests=3, batch_records=100, batch_connections=2, single_requests=60,
                            single_connections=2, open_rate=100.0, open_seconds=1.0, open_connections=2,
                            idle_seconds=1.0, interval=0.25, plugins=3, progress=messages.append)
    names = [r.name for r in results]
    assert len(results) == 8, names
    assert not [name for name in names if "ERRORS" in name], messages
    assert names[0].startswith("API batch ingest") and results[0].unit == "records/s"
    assert names[1].startswith("API single-record POSTs") and results[1].unit == "req/s"
    assert [r.name.split(",")[0] for r in results[2:5]] == ["API latency p99", "API latency p50",
                                                            "API latency max (all repeats)"]
    for row in results[:5]:
        assert row.value > 0 and math.isfinite(row.value), row
        assert row.baseline is not None and row.baseline > 0, row
    p99, p50, worst = (r.value for r in results[2:5])
    assert p50 <= p99 <= worst
    gap, off_schedule, longest = results[5:]
    assert gap.name.startswith("sampling under API load")
    assert gap.value > 0 and gap.baseline is not None and gap.baseline > 0
    assert off_schedule.value >= 0 and longest.value > 0 and longest.baseline is not None and longest.baseline > 0
    assert any(m.startswith("daemon: 1 × 3 batches") for m in messages), messages
    assert all(r.as_dict()["target"] for r in results)
