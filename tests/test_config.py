"""pmon.toml: every mistake is one clear line naming the file and the key or position."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pmon.config import SECTIONS, Config, ConfigError, MonitorConfig, StoreConfig, database_path, load, load_config, parse

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[monitor\nflush_interval = 1", "invalid TOML: "),
        ("[monitor]\nflush_interval = 1\n[monitor]\nbatch_size = 2", "invalid TOML: "),
        ("[monitor]\nflush_intervall = 1", "[monitor]: unknown key 'flush_intervall' (allowed: flush_interval"),
        ("[monitr]\n", "unknown section [monitr]"),
        ("[monitor]\nbatch_size = 'big'", "[monitor]: batch_size must be int, got str 'big'"),
        ("[monitor]\nbatch_size = 1.5", "batch_size must be int, got float"),
        ("[monitor]\nbatch_size = 0", "batch_size must be greater than 0"),
        ("[monitor]\nalert_min_severity = 'urgent'", "alert_min_severity must be one of info, low, medium, high, critical"),
        ("[store]\npath = 5", "[store]: path must be str, got int 5"),
        ("monitor = 3", "monitor must be a table"),
    ],
)
def test_bad_config_gives_one_clear_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "pmon.toml")
    message = str(info.value)
    assert message.startswith("pmon.toml: ") and expected in message
    assert "\n" not in message


def test_syntax_errors_give_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"line 2, column \d+"):
        parse("[monitor]\nflush_interval = = 1", "pmon.toml")


def test_unreadable_binary_and_directory_files(tmp_path: Path) -> None:
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(binary)
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)


def test_bom_and_empty_files_are_fine(tmp_path: Path) -> None:
    bom = tmp_path / "bom.toml"
    bom.write_text("\ufeff[monitor]\nbatch_size = 10\n", encoding="utf-8")
    assert load(bom).monitor.batch_size == 10
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load(empty).monitor == MonitorConfig()


def test_example_file_documents_every_key_with_its_default() -> None:
    example = load(REPO / "pmon.toml.example")
    text = (REPO / "pmon.toml.example").read_text()
    for name, section in SECTIONS.items():
        assert getattr(example, name) == section(), name
        for field in dataclasses.fields(section):
            assert f"\n{field.name} = " in text, field.name


def test_the_example_alert_rules_are_valid_once_uncommented() -> None:
    text = (REPO / "pmon.toml.example").read_text()
    block = text[text.index("# [[alerts]]\n# name"):text.index("# [plugins.NAME]: the processes")]
    config = parse("\n".join(line.removeprefix("#").strip() for line in block.splitlines()))
    assert [rule.name for rule in config.alerts] == ["cpu_hot", "billing_errors"]
    assert config.alerts[0].for_ == 300 and config.alerts[1].plugin == "billing*"


def test_the_example_documents_every_detector_key() -> None:
    from pmon.analysis.detectors.settings import SECTIONS as DETECTORS, DetectorSettings

    example = load(REPO / "pmon.toml.example")
    text = (REPO / "pmon.toml.example").read_text()
    assert example.detectors == DetectorSettings()
    for name, section in DETECTORS.items():
        assert f"[detectors.{name}]" in text
        for field in dataclasses.fields(section):
            assert f"\n{field.name} = " in text, (name, field.name)


def test_the_example_plugin_tables_are_valid_once_uncommented() -> None:
    text = (REPO / "pmon.toml.example").read_text()
    block = text[text.index("# [plugins.billing]"):]
    config = parse("\n".join(line.removeprefix("#").strip() for line in block.splitlines()))
    assert set(config.plugins) == {"billing", "postgres", "nginx", "legacy"}
    assert config.plugins["billing"].children and config.plugins["legacy"].pid == 4242


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PMON_CONFIG", raising=False)
    monkeypatch.delenv("PMON_DB", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    assert load_config() == Config()
    assert database_path(Config()) == tmp_path / "xdg-data" / "pmon" / "pmon.db"

    xdg = tmp_path / "xdg-config" / "pmon"
    xdg.mkdir(parents=True)
    (xdg / "pmon.toml").write_text("[monitor]\nbatch_size = 1\n")
    assert load_config().monitor.batch_size == 1
    (tmp_path / "pmon.toml").write_text("[monitor]\nbatch_size = 2\n[store]\npath = 'data/here.db'\n")
    assert load_config().monitor.batch_size == 2
    assert database_path(load_config()) == Path("pmon.toml").parent / "data/here.db"
    other = tmp_path / "other.toml"
    other.write_text("[monitor]\nbatch_size = 3\n")
    monkeypatch.setenv("PMON_CONFIG", str(other))
    assert load_config().monitor.batch_size == 3
    assert load_config(tmp_path / "pmon.toml").monitor.batch_size == 2
    monkeypatch.setenv("PMON_DB", "/tmp/from-env.db")
    assert database_path(load_config()) == Path("/tmp/from-env.db")
    assert database_path(load_config(), "/tmp/explicit.db") == Path("/tmp/explicit.db")
    assert os.environ["PMON_DB"] == "/tmp/from-env.db"


def test_monitor_keyword_overrides_are_checked_like_the_file() -> None:
    from pmon import Monitor

    assert Monitor("/tmp/unused.db", flush_interval=2).settings.flush_interval == 2.0
    with pytest.raises(ConfigError, match="unknown key 'flush'"):
        Monitor("/tmp/unused.db", flush=1)


def test_a_cmdline_pattern_with_nested_repetition_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=r"\[plugins.a\]: cmdline .* exponential time"):
        parse('[plugins.a]\ncmdline = "(a+)+$"\n', "pmon.toml")
    assert parse('[plugins.a]\ncmdline = "java .*-jar .*app\\\\.jar"\n').plugins["a"].cmdline
