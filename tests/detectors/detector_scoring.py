"""Runs labelled streams through the engine and scores the findings against the labels, per detector."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from detector_streams import FAST, SLOW, Label, Stream

from pmon.analysis.detectors import DetectorEngine, DetectorSettings, Finding, episodes

DETECTORS = ("leak", "anomaly", "error_spike", "down")


def run(stream: Stream, settings: DetectorSettings) -> list[Finding]:
    """The stream fed to a fresh engine in time order (events first at equal times), as episodes."""
    engine = DetectorEngine(settings)
    events = ((ts, 0, 0, kind, None) for ts, kind in stream.events)
    series = [_tagged(i, metric, points) for i, (metric, points) in enumerate(stream.series.items())]
    found: list[Finding] = []
    for ts, kind, _, name, value in heapq.merge(events, *series, key=lambda item: item[:3]):
        if kind == 0:
            found += engine.feed_event(stream.plugin_id, name, ts)
        else:
            found += engine.feed_points(stream.plugin_id, name, [(ts, value)])
    return episodes(found)


def _tagged(index: int, metric: str, points: list[tuple[float, float]]):
    return ((ts, 1, index, metric, value) for ts, value in points)


def window_seconds(detector: str, metric: str, settings: DetectorSettings) -> float:
    """What "within two windows" is measured in, per detector."""
    if detector == "leak":
        return settings.leak.window
    if detector == "anomaly":
        cadence = FAST if metric in ("cpu_usage", "memory_usage") else SLOW
        return settings.anomaly.window * max(settings.anomaly.resolution, cadence)
    if detector == "error_spike":
        return settings.error_spike.short_window
    return FAST


@dataclass
class Score:
    """One detector's tally over all streams."""

    findings: int = 0
    true_findings: int = 0
    labels: int = 0
    detected: int = 0
    late: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    delays: list[tuple[str, float]] = field(default_factory=list)
    """(plugin, seconds from onset to the first finding) of each label found."""

    @property
    def precision(self) -> float:
        return self.true_findings / self.findings if self.findings else 1.0

    @property
    def recall(self) -> float:
        return self.detected / self.labels if self.labels else 1.0


def _matches(finding: Finding, label: Label, settings: DetectorSettings) -> bool:
    tolerance = 2 * window_seconds(label.detector, label.metric, settings)
    return (finding.detector == label.detector and finding.plugin_id == label.plugin_id
            and (label.detector == "down" or finding.metric == label.metric)
            and label.onset <= finding.start <= label.end + tolerance)


def _points_at(finding: Finding, label: Label, settings: DetectorSettings) -> bool:
    """A finding about a metric while that metric truly misbehaves (an anomaly at a fast leak's onset)
    is not a false alarm, though it is not the detector the label expects."""
    return (finding.plugin_id == label.plugin_id and finding.metric == label.metric
            and label.onset <= finding.start <= label.end + 2 * window_seconds(label.detector, label.metric, settings))


def score(streams: list[Stream], settings: DetectorSettings) -> dict[str, Score]:
    """Precision: findings that match a label of their detector; recall: labels matched by a finding."""
    scores = {name: Score() for name in DETECTORS}
    for stream in streams:
        findings = run(stream, settings)
        for finding in findings:
            tally = scores[finding.detector]
            tally.findings += 1
            if any(_matches(finding, label, settings) or _points_at(finding, label, settings) for label in stream.labels):
                tally.true_findings += 1
            else:
                tally.false.append(f"{stream.plugin_id} ({stream.description}): {finding.summary} at "
                                   f"+{finding.start - stream.series[next(iter(stream.series))][0][0]:.0f} s")
        for label in stream.labels:
            tally = scores[label.detector]
            tally.labels += 1
            hits = [f for f in findings if _matches(f, label, settings)]
            if not hits:
                tally.missed.append(f"{stream.plugin_id} ({stream.description})")
                continue
            tally.detected += 1
            delay = min(f.start for f in hits) - label.onset
            if delay > 2 * window_seconds(label.detector, label.metric, settings):
                tally.late.append(f"{stream.plugin_id}: {delay:.0f} s after onset")
            tally.delays.append((stream.plugin_id, delay))
    return scores
