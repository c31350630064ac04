"""Events: a live tail coloured by severity, filtered by severity, category, plugin and text.

On an alert's event, `a` acknowledges the alert and `S` silences its rule:
the console's only writes (see ``alert_actions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable

from pmon.models import EventCategory, PluginEvent, Severity
from pmon.store.schema import StoreError
from pmon.tui.alert_actions import SILENCE_SECONDS, ack_alert, alert_target, silence_rule
from pmon.tui.events_data import EventBatch, EventQuery
from pmon.tui.live_panel import LivePanel
from pmon.tui.messages import OpenPlugin, RefreshWanted
from pmon.tui.safe_text import first_line, safe_text, visible
from pmon.tui.screens.event_screen import EventScreen
from pmon.tui.styles import SEVERITY_STYLES
from pmon.tui.widgets.event_table import EventTable
from pmon.tui.widgets.filter_input import FilterInput
from pmon.tui.widgets.status_line import StatusLine

SEVERITY_CYCLE: tuple[Severity, ...] = tuple(Severity)
"""Minimum severities in the order `s` cycles them (info shows everything)."""
CATEGORY_CYCLE: tuple[EventCategory | None, ...] = (None, *EventCategory)
"""Categories in the order `c` cycles them (None: all)."""


class EventsTab(Vertical, LivePanel):
    """Owns the Events filters and tail position; the app asks it for an ``EventQuery`` on each refresh."""

    DEFAULT_CSS = """
    EventsTab #events {
        height: 1fr;
    }
    EventsTab #events-detail {
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    BINDINGS = [
        Binding("s", "cycle_severity", "Severity", tooltip="Minimum severity: info, low, medium, high, critical"),
        Binding("c", "cycle_category", "Category", tooltip="Category: all, system, user, error, alert"),
        Binding("n", "cycle_plugin", "Plugin", tooltip="Plugin: all, then each plugin with events"),
        Binding("N", "cycle_plugin(-1)", "Plugin back", show=False, tooltip="Plugin filter, backwards"),
        Binding("slash", "filter", "Filter", tooltip="Show descriptions containing a text (empty: all)"),
        Binding("o", "open_plugin", "Open plugin", tooltip="Open the plugin screen of the highlighted event"),
        # Out of the footer (no room at 80 columns): the detail line offers them on an alert rule's event.
        Binding("a", "ack", "Ack", show=False, tooltip="Acknowledge the highlighted event's alert (a write: one of "
                "the console's only two)"),
        Binding("S", "silence", "Silence 1h", show=False, tooltip="Silence the highlighted alert's rule on its plugin "
                "for 1 hour (a write: one of the console's only two)"),
        Binding("p", "pause", "Pause", show=False, tooltip="Pause following (new events keep arriving below)"),
        Binding("f", "follow", "Follow", show=False, tooltip="Jump to the newest event and follow"),
    ]

    panel_key = "events"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.generation = 0
        """Bumped on every filter change, so answers to older queries are ignored."""
        self.severity_index = 0
        """Position in SEVERITY_CYCLE."""
        self.category_index = 0
        """Position in CATEGORY_CYCLE."""
        self.plugin_id: str | None = None
        """The one plugin shown (None: all)."""
        self.plugins: tuple[str, ...] = ()
        """Plugins with events, as of the latest read: what `n` cycles through."""
        self.text = ""
        """Substring the description must contain ("" for none)."""
        self.loaded = False
        """True once the current generation's first page has arrived; until then the query has no after_id."""
        self.after_id = 0
        """Tail position: every event up to this id has been read for the current filters."""

    def compose(self) -> ComposeResult:
        yield StatusLine(id="events-status")
        yield EventTable(id="events")
        yield StatusLine(id="events-detail")
        yield FilterInput(placeholder="description contains… (Enter applies, Esc cancels)", id="events-filter")

    def on_mount(self) -> None:
        self._draw_status()
        self._draw_detail()

    @property
    def table(self) -> EventTable:
        """The events."""
        return self.query_one(EventTable)

    @property
    def min_severity(self) -> Severity:
        """The lowest severity shown."""
        return SEVERITY_CYCLE[self.severity_index]

    @property
    def category(self) -> EventCategory | None:
        """The one category shown (None: all)."""
        return CATEGORY_CYCLE[self.category_index]

    # -- the refresh cycle ----------------------------------------------------------

    def panel_query(self) -> EventQuery:
        """The first page for the current filters, or what came after the newest event shown."""
        return EventQuery(
            generation=self.generation,
            min_severity=self.min_severity if self.severity_index else None,
            category=self.category,
            plugin_id=self.plugin_id,
            text=self.text or None,
            after_id=self.after_id if self.loaded else None,
        )

    def show_panel(self, result: object) -> None:
        """Take a refresh's events; answers to an older filter or tail position are dropped."""
        if not isinstance(result, EventBatch) or result.query.generation != self.generation:
            return
        if self.loaded and result.query.after_id != self.after_id:
            return
        self.plugins = result.plugins
        table = self.table
        if result.query.after_id is None:
            table.replace_records(result.events)
            self.loaded = True
        elif result.more_waiting and table.follow:
            # Far behind (a burst, or the tab was hidden): start again from the newest page, as tail -f would.
            self.loaded = False
            self.post_message(RefreshWanted())
            return
        else:
            table.append_records(result.events)
        self.after_id = result.tail_after(self.after_id)
        self._draw_status()
        self._draw_detail()
        if result.more_waiting:  # paused: page through the rest below the rows being read
            self.post_message(RefreshWanted())

    def _query_changed(self) -> None:
        self.generation += 1
        self.loaded = False
        self.after_id = 0
        self.table.replace_records([])
        self.table.follow = True
        self._draw_status()
        self._draw_detail()
        self.post_message(RefreshWanted())

    # -- drawing ------------------------------------------------------------------------

    def _draw_status(self) -> None:
        """Follow state, then every filter: severity always, the others only when set."""
        table = self.table
        line = table.follow_status()
        severity = str(self.min_severity)
        line.append("  severity ≥ ", "dim")
        line.append(severity, SEVERITY_STYLES.get(severity, ""))
        if self.category is not None:
            line.append("  category ", "dim")
            line.append(str(self.category), "bold")
        if self.plugin_id is not None:
            line.append("  plugin ", "dim")
            line.append_text(safe_text(self.plugin_id, "bold"))
        if self.text:
            line.append("  text: ", "dim")
            line.append_text(safe_text(self.text, "bold"))
        line.append(f"  {table.row_count} events" if self.loaded else "  loading…", "dim")
        self.query_one("#events-status", StatusLine).show(line)

    def _draw_detail(self) -> None:
        """The highlighted event's category, type, description and data on one line: the columns cut them."""
        event = self.table.record_at_cursor()
        if event is None:
            text = Text("no events match" if self.loaded else "", style="dim")
        else:
            text = _alert_keys_hint(event)
            text.append_text(Text.assemble(safe_text(event.category, "dim"), " ", safe_text(event.event_type, "bold"),
                                           ": ", first_line(event.description)))
            if event.data is not None:
                text.append("  ")
                text.append_text(safe_text(json.dumps(event.data, ensure_ascii=False, default=str), "dim"))
        self.query_one("#events-detail", StatusLine).show(text)

    def on_event_table_follow_changed(self, event: EventTable.FollowChanged) -> None:
        event.stop()
        if self.is_mounted:
            self._draw_status()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._draw_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        record = self.table.record_at_cursor()
        if record is not None:
            self.app.push_screen(EventScreen(record))

    # -- keys -------------------------------------------------------------------------

    def action_pause(self) -> None:
        """`p`: stop moving to new events (they keep arriving below)."""
        self.table.follow = False

    def action_follow(self) -> None:
        """`f`: jump to the newest event and follow again."""
        self.table.action_follow()

    def action_cycle_severity(self) -> None:
        """`s`: raise the minimum severity (info → low → medium → high → critical → info)."""
        self.severity_index = (self.severity_index + 1) % len(SEVERITY_CYCLE)
        self._query_changed()

    def action_cycle_category(self) -> None:
        """`c`: the next category (all → system → user → error → alert → all)."""
        self.category_index = (self.category_index + 1) % len(CATEGORY_CYCLE)
        self._query_changed()

    def action_cycle_plugin(self, step: int = 1) -> None:
        """`n` / `N`: the next / previous plugin with events, then all plugins again."""
        choices: list[str | None] = [None, *self.plugins]
        if self.plugin_id is not None and self.plugin_id not in self.plugins:
            choices.append(self.plugin_id)
        self.plugin_id = choices[(choices.index(self.plugin_id) + step) % len(choices)]
        self._query_changed()

    def action_filter(self) -> None:
        """`/`: show only events whose description contains a text."""
        self.query_one(FilterInput).open(self.text)

    def action_open_plugin(self) -> None:
        """`o`: the plugin screen of the highlighted event's plugin."""
        record = self.table.record_at_cursor()
        if record is not None:
            self.post_message(OpenPlugin(record.plugin_id))

    def action_ack(self) -> None:
        """`a`: acknowledge the highlighted event's alert, on a worker with a write connection of its own."""
        record = self.table.record_at_cursor()
        if record is None:
            return
        target = alert_target(record)
        if target.alert_id is None:
            self._tell("Nothing to acknowledge: only an alert rule's events (alert_firing, alert_resolved) name "
                       "an alert.", "warning")
            return
        self._write("Acknowledge", partial(ack_alert, self.app.db_path, target.alert_id,  # type: ignore[attr-defined]
                                           self.app.clock()))  # type: ignore[attr-defined]

    def action_silence(self) -> None:
        """`S`: silence the highlighted alert's rule on its plugin for an hour, on a worker."""
        record = self.table.record_at_cursor()
        if record is None:
            return
        target = alert_target(record)
        if target.rule is None:
            self._tell("Nothing to silence: only an alert rule's events (alert_firing, alert_resolved) name a rule.",
                       "warning")
            return
        self._write("Silence", partial(silence_rule, self.app.db_path, target.rule,  # type: ignore[attr-defined]
                                       target.plugin_id, self.app.clock(), SILENCE_SECONDS))  # type: ignore[attr-defined]

    @work(thread=True, group="alert-writes", exit_on_error=False)
    def _write(self, title: str, change: Callable[[], str]) -> None:
        """Runs on a worker thread: the write connection is opened, used once and closed there."""
        try:
            message, severity = change(), "information"
        except StoreError as exc:
            message, severity = str(exc), "error"
        except Exception as exc:  # noqa: BLE001 - a failed write is a notice, never the end of the console
            message, severity = f"{type(exc).__name__}: {exc}", "error"
        if self.app.is_running:
            self.app.call_from_thread(self._written, title, message, severity)

    def _written(self, title: str, message: str, severity: str) -> None:
        self._tell(message, severity, title if severity != "error" else f"{title} failed")
        self.post_message(RefreshWanted())  # the header's count and the plugin screen read it again

    def _tell(self, message: str, severity: str, title: str = "") -> None:
        self.notify(visible(message), title=title, severity=severity, markup=False)  # type: ignore[arg-type]

    def on_filter_input_applied(self, event: FilterInput.Applied) -> None:
        event.stop()
        if event.text != self.text:
            self.text = event.text
            self._query_changed()

    def on_filter_input_closed(self, event: FilterInput.Closed) -> None:
        event.stop()
        self.table.focus()


def _alert_keys_hint(event: PluginEvent) -> Text:
    """``a ack · S silence 1h (writes) │`` on an alert rule's event: where the keys apply, and what they do."""
    target = alert_target(event)
    keys = [(key, what) for key, what, applies in (("a", "ack", target.alert_id is not None),
                                                   ("S", "silence 1h", target.rule is not None)) if applies]
    hint = Text()
    for index, (key, what) in enumerate(keys):
        hint.append(" · " if index else "")
        hint.append(key, "bold reverse")
        hint.append(f" {what}")
    if keys:
        hint.append(" (writes) │ ", "dim")
    return hint
