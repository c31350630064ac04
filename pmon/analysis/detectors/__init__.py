"""Streaming detectors (memory leak, anomaly, error-rate spike, plugin down), their engine and the backtest.

Headless: no Textual, and SQL only through ``pmon.store.history_queries``.
"""

from pmon.analysis.detectors.backtest import backtest, replay
from pmon.analysis.detectors.engine import DetectorEngine
from pmon.analysis.detectors.finding import Finding, episodes
from pmon.analysis.detectors.settings import (AnomalySettings, DetectorSettings, DownSettings, ErrorSpikeSettings,
                                              LeakSettings, settings_from_toml)

__all__ = ["AnomalySettings", "DetectorEngine", "DetectorSettings", "DownSettings", "ErrorSpikeSettings", "Finding",
           "LeakSettings", "backtest", "episodes", "replay", "settings_from_toml"]
