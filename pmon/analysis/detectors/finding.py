"""What a detector reports: one finding per episode, emitted when it opens and again when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One episode of a detector's condition on one plugin (and metric).

    A detector emits the finding once when the episode opens (``end`` is None)
    and once more when it ends (same ``start``, ``end`` set): a live engine
    records the first as an alert and the second as its resolution, and a
    backtest keeps the last word on each episode.
    """

    detector: str
    """``leak``, ``anomaly``, ``error_spike`` or ``down``."""
    plugin_id: str
    metric: str
    """The metric the episode is about; ``""`` for down."""
    start: float
    """Epoch seconds of the sample (or event) that opened the episode."""
    end: float | None
    """Epoch seconds of the sample that closed it; None while it goes on."""
    severity: str
    summary: str
    """One line for people."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """The figures behind the finding (JSON-serialisable), recorded as the event's data."""

    @property
    def key(self) -> tuple[str, str, str, float]:
        """What identifies an episode across its opening and closing findings."""
        return (self.detector, self.plugin_id, self.metric, self.start)

    def ended(self, end: float, **evidence: Any) -> Finding:
        """This episode's closing finding."""
        return replace(self, end=end, evidence={**self.evidence, **evidence})


def episodes(findings: list[Finding]) -> list[Finding]:
    """Collapse opening and closing findings into one per episode (the latest word), ordered by start."""
    latest: dict[tuple[str, str, str, float], Finding] = {}
    for finding in findings:
        latest[finding.key] = finding
    return sorted(latest.values(), key=lambda f: (f.start, f.detector, f.plugin_id, f.metric))
