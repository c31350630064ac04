"""[detectors.*] in pmon.toml: the defaults, and one clear line for each mistake."""

from __future__ import annotations

import dataclasses
import inspect
import tomllib

import pytest

from pmon.analysis.detectors import settings as settings_module
from pmon.analysis.detectors.settings import DetectorSettings, settings_from_toml


def test_an_empty_table_gives_the_defaults() -> None:
    assert settings_from_toml({}, "pmon.toml") == DetectorSettings()


def test_values_from_toml_are_used() -> None:
    table = tomllib.loads("""
[detectors.leak]
min_slope = 25
limit = 2048.0
[detectors.anomaly]
metrics = ["response_time"]
m = 2
[detectors.error_spike]
enabled = false
""")["detectors"]
    got = settings_from_toml(table, "pmon.toml")
    assert got.leak.min_slope == 25.0 and got.leak.limit == 2048.0
    assert got.anomaly.metrics == ("response_time",) and got.anomaly.m == 2
    assert got.error_spike.enabled is False and got.down == DetectorSettings().down


@pytest.mark.parametrize(("table", "message"), [
    ({"leek": {}}, "unknown section [detectors.leek]"),
    ({"leak": {"slope": 1.0}}, "[detectors.leak]: unknown key 'slope'"),
    ({"leak": {"min_r2": 1.5}}, "[detectors.leak]: min_r2 must be 0 to 1"),
    ({"leak": {"window": "30m"}}, "[detectors.leak]: window must be float"),
    ({"anomaly": {"m": 6}}, "[detectors.anomaly]: m must be at most n (5)"),
    ({"anomaly": {"window": 2}}, "[detectors.anomaly]: window must be 5 to 10000 samples"),
    ({"anomaly": {"metrics": []}}, "[detectors.anomaly]: metrics must be a non-empty list"),
    ({"error_spike": {"baseline_window": 60.0}}, "[detectors.error_spike]: baseline_window must be longer"),
    ({"error_spike": {"factor": float("nan")}}, "[detectors.error_spike]: factor must be a finite number"),
    ({"down": 1}, "[detectors.down]: must be a table"),
])
def test_mistakes_are_one_line_naming_the_table_and_key(table: dict, message: str) -> None:
    with pytest.raises(ValueError) as error:
        settings_from_toml(table, "pmon.toml")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith("pmon.toml: ")


def test_every_setting_has_a_one_line_docstring() -> None:
    """The docstrings become pmon.toml.example lines."""
    for cls in (settings_module.LeakSettings, settings_module.AnomalySettings, settings_module.ErrorSpikeSettings,
                settings_module.DownSettings):
        source = inspect.getsource(cls)
        for field in dataclasses.fields(cls):
            after = source.split(f"    {field.name}:", 1)[1].splitlines()[1].strip()
            assert after.startswith('"""'), f"{cls.__name__}.{field.name} has no docstring"
