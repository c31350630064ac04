"""The alert state machine as a user sees it: when an alert fires, stays quiet, and resolves."""

from __future__ import annotations

from typing import Any

from pmon.analysis.alert_rules import AlertRule
from pmon.analysis.alerting import Alert, AlertEvaluator, AlertState, Silence, Transition

T0 = 1_700_000_000.0


def cpu_rule(**changes: Any) -> AlertRule:
    fields: dict[str, Any] = {"name": "cpu_hot", "metric": "cpu_usage", "comparison": ">", "threshold": 90.0,
                              "for_": 60.0, "clear": 75.0, "description": "web CPU saturated"}
    return AlertRule(**{**fields, **changes})


def feed(evaluator: AlertEvaluator, plugin: str, values: list[float], start: float = T0, step: float = 10.0,
         **kwargs: Any) -> list[Transition]:
    """One point every ``step`` seconds, each in its own evaluation, as the daemon does."""
    changes = []
    for i, value in enumerate(values):
        ts = start + i * step
        changes += evaluator.evaluate(ts, [(plugin, "cpu_usage", ts, value)], **kwargs)
    return changes


def states(changes: list[Transition]) -> list[str]:
    return [c.state.value for c in changes]


def test_a_breach_goes_pending_then_fires_once_it_has_held_for_the_duration() -> None:
    evaluator = AlertEvaluator([cpu_rule()])
    changes = feed(evaluator, "web", [95, 96, 97, 98, 99, 97, 96, 95])
    assert states(changes) == ["pending", "firing"]
    pending, firing = changes
    assert not pending.notify and pending.event_type is None
    assert firing.notify and firing.event_type == "alert_firing" and firing.at == T0 + 60 and firing.since == T0
    assert (firing.rule, firing.plugin_id, firing.value, firing.threshold, firing.severity) == (
        "cpu_hot", "web", 96, 90.0, "high")
    assert firing.description == "cpu_hot firing on web: cpu_usage 96 > 90 for 1m — web CPU saturated"
    assert firing.event_data(alert_id=7) == {
        "rule": "cpu_hot", "plugin": "web", "metric": "cpu_usage", "state": "firing", "value": 96,
        "comparison": ">", "threshold": 90.0, "clear": 75.0, "since": T0, "alert_id": 7}
    assert evaluator.state("cpu_hot", "web") is AlertState.FIRING


def test_repeated_evaluation_of_the_same_points_never_duplicates_an_alert() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0)])
    points = [("web", "cpu_usage", T0 + i, 95.0) for i in range(5)]
    assert states(evaluator.evaluate(T0 + 5, points)) == ["firing"]
    assert evaluator.evaluate(T0 + 5, points) == []
    assert evaluator.evaluate(T0 + 6, [("web", "cpu_usage", T0 + 6, 99.0)]) == []
    assert evaluator.open_alerts() == {("cpu_hot", "web"): AlertState.FIRING}


def test_a_value_between_clear_and_threshold_keeps_it_firing_and_only_past_clear_resolves() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0)])
    changes = feed(evaluator, "web", [95, 89, 80, 75.5, 91, 76, 75, 80])
    assert states(changes) == ["firing", "resolved"]
    resolved = changes[1]
    assert resolved.value == 75 and resolved.event_type == "alert_resolved" and resolved.notify
    assert resolved.description.startswith("cpu_hot resolved on web: cpu_usage 75 (clears past 75) after 1m")
    assert evaluator.state("cpu_hot", "web") is AlertState.INACTIVE


def test_without_clear_it_resolves_as_soon_as_the_condition_is_false() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0, clear=None, comparison=">=")])
    assert states(feed(evaluator, "web", [90, 89.9])) == ["firing", "resolved"]


def test_a_breach_after_resolution_is_a_new_alert() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0)])
    assert states(feed(evaluator, "web", [95, 50, 95])) == ["firing", "resolved", "firing"]


def test_a_pending_alert_that_clears_before_the_duration_goes_back_to_inactive_silently() -> None:
    evaluator = AlertEvaluator([cpu_rule()])
    changes = feed(evaluator, "web", [95, 96, 97, 50, 95, 96])
    assert states(changes) == ["pending", "inactive", "pending"]
    assert not any(c.notify for c in changes)
    assert changes[2].since == T0 + 40  # the clock starts again with the new breach


def test_pending_uses_the_threshold_not_clear() -> None:
    evaluator = AlertEvaluator([cpu_rule()])
    assert states(feed(evaluator, "web", [95, 80])) == ["pending", "inactive"]


def test_points_in_one_call_are_taken_in_time_order_so_backfilled_history_fires_like_a_live_feed() -> None:
    evaluator = AlertEvaluator([cpu_rule()])
    points = [("web", "cpu_usage", T0 + i * 10, 95.0) for i in range(8)]
    changes = evaluator.evaluate(T0 + 1000, reversed(points))
    assert states(changes) == ["pending", "firing"] and changes[1].at == T0 + 60


def test_less_than_rules_fire_low_and_resolve_above_clear() -> None:
    evaluator = AlertEvaluator([cpu_rule(comparison="<", threshold=10.0, clear=20.0, for_=0.0)])
    assert states(feed(evaluator, "web", [5, 15, 19.9, 20])) == ["firing", "resolved"]


def test_one_alert_per_rule_and_plugin_and_the_glob_chooses_the_plugins() -> None:
    evaluator = AlertEvaluator([cpu_rule(plugin="web-*", for_=0.0), cpu_rule(name="any_hot", for_=0.0)])
    points = [(p, "cpu_usage", T0, 99.0) for p in ("web-1", "web-2", "db")] + [("web-1", "memory_usage", T0, 99.0)]
    changes = evaluator.evaluate(T0, points)
    assert sorted((c.rule, c.plugin_id) for c in changes) == [
        ("any_hot", "db"), ("any_hot", "web-1"), ("any_hot", "web-2"), ("cpu_hot", "web-1"), ("cpu_hot", "web-2")]


def test_a_down_plugin_mutes_its_alerts_a_firing_one_stays_firing_until_its_points_say_otherwise() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0), cpu_rule(name="cpu_low", comparison="<", threshold=5.0,
                                                             clear=None, for_=0.0)])
    assert states(feed(evaluator, "web", [95])) == ["firing"]
    down = feed(evaluator, "web", [0, 0, 0], start=T0 + 10, down_plugins={"web"})  # the daemon records zeros
    assert down == []
    assert evaluator.state("cpu_hot", "web") is AlertState.FIRING
    assert evaluator.state("cpu_low", "web") is AlertState.INACTIVE
    assert states(feed(evaluator, "web", [40], start=T0 + 100)) == ["resolved"]


def test_a_plugin_going_down_cancels_its_pending_alerts_without_an_event() -> None:
    evaluator = AlertEvaluator([cpu_rule()])
    feed(evaluator, "web", [95, 96])
    changes = evaluator.evaluate(T0 + 30, [], down_plugins={"web"})
    assert states(changes) == ["inactive"] and changes[0].reason == "plugin down" and not changes[0].notify
    assert "no longer pending on web: plugin down" in changes[0].description
    assert states(feed(evaluator, "web", [95], start=T0 + 40)) == ["pending"]


def test_a_silenced_rule_keeps_its_state_but_does_not_notify() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0)])
    hush = Silence(id=1, rule="cpu_hot", plugin="web*", until=T0 + 15, created_at=T0 - 1)
    changes = feed(evaluator, "web", [95, 50, 95], silences=[hush])
    assert states(changes) == ["firing", "resolved", "firing"]
    assert [c.silenced for c in changes] == [True, True, False]
    assert [c.notify for c in changes] == [False, False, True]
    other_plugin = feed(evaluator, "db", [95], silences=[hush])
    assert other_plugin[0].notify


def test_load_state_continues_a_firing_alert_without_firing_it_again() -> None:
    stored = Alert(id=3, rule="cpu_hot", plugin_id="web", metric="cpu_usage", state=AlertState.FIRING, value=95.0,
                   threshold=90.0, severity="high", started_at=T0, fired_at=T0 + 60)
    evaluator = AlertEvaluator([cpu_rule()])
    assert evaluator.load_state([stored]) == []
    assert evaluator.state("cpu_hot", "web") is AlertState.FIRING
    assert states(feed(evaluator, "web", [96, 97, 80, 70], start=T0 + 120)) == ["resolved"]


def test_load_state_closes_alerts_whose_rule_is_gone_or_no_longer_matches() -> None:
    def stored(rule: str, state: AlertState) -> Alert:
        return Alert(id=1, rule=rule, plugin_id="db", metric="cpu_usage", state=state, value=95.0, threshold=90.0,
                     severity="high", started_at=T0, fired_at=T0 + 60 if state is AlertState.FIRING else None)

    evaluator = AlertEvaluator([cpu_rule(plugin="web-*")])
    changes = evaluator.load_state([stored("removed", AlertState.FIRING), stored("cpu_hot", AlertState.PENDING)])
    assert [(c.rule, c.state.value, c.reason) for c in changes] == [
        ("removed", "resolved", "rule removed"), ("cpu_hot", "inactive", "plugin no longer matches")]
    assert changes[0].notify and evaluator.open_alerts() == {}


def test_other_metrics_and_non_finite_values_are_ignored() -> None:
    evaluator = AlertEvaluator([cpu_rule(for_=0.0)])
    assert evaluator.evaluate(T0, [("web", "memory_usage", T0, 1e9), ("web", "cpu_usage", T0, float("nan"))]) == []
