"""One plugin in depth: its status, charts and statistics over a time range, its recent logs, events and snapshots,
its largest error groups over the range and its recent findings and alerts."""

from __future__ import annotations

import itertools
import time

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from pmon.models import PerformanceSnapshot, PluginEvent
from pmon.tui import units
from pmon.tui.live_panel import LivePanel
from pmon.tui.messages import RefreshWanted
from pmon.tui.error_groups_data import GroupingSchedule
from pmon.tui.findings_data import ShownFinding
from pmon.tui.plugin_data import DEFAULT_RANGE, RANGES, RECENT_EVENTS, PluginQuery, PluginView, RangeStats
from pmon.tui.safe_text import safe_text
from pmon.tui.screens.event_screen import EventScreen
from pmon.tui.screens.log_screen import LogScreen
from pmon.tui.tabs.metrics_tab import MetricsTab
from pmon.tui.styles import ALERT_STYLES, SEVERITY_STYLES, STATUS_STYLES
from pmon.tui.widgets.error_group_table import ErrorGroupTable
from pmon.tui.widgets.log_table import LogTable
from pmon.tui.widgets.metric_charts import MetricCharts, chart_columns

_GENERATIONS = itertools.count(1)
"""Shared by every plugin screen, so an answer meant for a screen already closed never matches a new one."""
_PLUGIN_ID_WIDTH = 16
"""The id's share of the heading at 80 columns; it gets what the rest of the heading leaves on wider screens."""
_HEADING_REST = 66
_EVENT_WIDTHS = (("time", 8), ("severity", 8), ("type", 16))
_FINDING_WIDTHS = (("time", 8), ("state", 8), ("type", 20))
_SNAPSHOT_COLUMNS = (("time", 8), ("CPU", 5), ("memory", 7), ("response", 8), ("errors", 6), ("requests", 8),
                     ("req/s", 7))
_SCROLLBAR = 2


def chart_height(screen_height: int) -> int:
    """Rows per chart: one at 24 lines, more as the terminal grows, never starving the tables below."""
    return max(1, min(4, (screen_height - 16) // 5))


class PluginScreen(Screen[None], LivePanel):
    """Drill-down for ``plugin_id``: Enter on a log or an event goes further, Esc goes back one level."""

    DEFAULT_CSS = """
    PluginScreen #plugin-heading {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    PluginScreen #plugin-stats {
        height: auto;
        padding: 0 1;
    }
    PluginScreen #plugin-lists {
        height: 1fr;
    }
    PluginScreen TabPane {
        padding: 0;
    }
    PluginScreen TabPane > DataTable {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "cycle_range", "Range", tooltip="Time range: 5m, 15m, 1h, 6h, 24h, 7d, 30d"),
        Binding("m", "show_metrics", "Metrics", tooltip="This plugin in the Metrics tab"),
        Binding("l", "show_list('plugin-logs')", "Logs", tooltip="Recent logs (Enter opens one)"),
        Binding("e", "show_list('plugin-events')", "Events", tooltip="Recent events (Enter opens one)"),
        Binding("s", "show_list('plugin-snapshots')", "Snapshots", tooltip="Recent snapshots"),
        # Out of the footer, which has no room left at 80 columns: the tab labels and `?` show them.
        Binding("g", "show_list('plugin-errors')", "Errors", show=False,
                tooltip="The largest error groups over the range (Enter opens the newest log of one)"),
        Binding("a", "show_list('plugin-alerts')", "Alerts", show=False,
                tooltip="Recent findings and alerts with their state (Enter opens one)"),
    ]

    panel_key = "plugin"

    def __init__(self, plugin_id: str) -> None:
        super().__init__()
        self.plugin_id = plugin_id
        """The plugin shown."""
        self.range_index = DEFAULT_RANGE
        """Position in RANGES."""
        self.generation = next(_GENERATIONS)
        """Changes with the range, so answers to an older query are dropped."""
        self.view: PluginView | None = None
        """The latest answer for the current range (None: loading)."""
        self.logs_loaded = False
        """True once the first page of logs is shown; from then on only newer logs are read."""
        self.log_after = 0
        """Every log of the plugin up to this id has been read."""
        self.events: list[PluginEvent] = []
        """Recent events shown, newest first."""
        self.events_loaded = False
        """True once the first page of events is shown."""
        self.event_after = 0
        """Every event of the plugin up to this id has been read."""
        self.snapshot_newest: int | None = None
        """Newest snapshot id shown (None: not read yet)."""
        self.snapshots: tuple[PerformanceSnapshot, ...] = ()
        """Recent snapshots shown, newest first."""
        self.findings: tuple[ShownFinding, ...] = ()
        """Recent alert-category events shown, newest first."""
        self._schedule = GroupingSchedule()

    def show_plugin(self, plugin_id: str) -> None:
        """Show another plugin in this screen (the app keeps one: composing a screen costs more than reading it).

        The time range stays as the user left it.
        """
        self.plugin_id = plugin_id
        self.generation = next(_GENERATIONS)
        self.view = None
        self.logs_loaded, self.log_after = False, 0
        self.events, self.events_loaded, self.event_after = [], False, 0
        self.snapshot_newest, self.snapshots = None, ()
        self.findings = ()
        self._schedule.reset()
        if not self.is_mounted:
            return
        self.query_one(ErrorGroupTable).show_groups((), 0)
        self._set_tab_label("plugin-errors", "Errors", 0)
        self._draw_findings()
        self.query_one(LogTable).replace_logs([])
        self._set_tab_label("plugin-logs", "Logs", 0)
        self._draw_events()
        self._draw_snapshots()
        self.query_one(MetricCharts).show(None)
        self.query_one("#plugin-stats", Static).update(Text("loading statistics…", style="dim"))
        self._draw_heading()
        self.query_one(LogTable).focus()

    def compose(self) -> ComposeResult:
        yield Static(id="plugin-heading")
        yield MetricCharts(id="plugin-charts")
        yield Static(id="plugin-stats")
        with TabbedContent(id="plugin-lists"):
            with TabPane("Logs", id="plugin-logs"):
                yield LogTable(id="plugin-log-table")
            with TabPane("Events", id="plugin-events"):
                yield DataTable(id="plugin-event-table", cursor_type="row")
            with TabPane("Snapshots", id="plugin-snapshots"):
                yield DataTable(id="plugin-snapshot-table", cursor_type="row")
            with TabPane("Errors", id="plugin-errors"):
                yield ErrorGroupTable(id="plugin-group-table")
            with TabPane("Alerts", id="plugin-alerts"):
                yield DataTable(id="plugin-finding-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(MetricCharts).chart_height = chart_height(self.app.size.height)
        self._draw_heading()
        self.query_one("#plugin-stats", Static).update(Text("loading statistics…", style="dim"))
        self._set_event_columns()
        self._set_finding_columns()
        snapshots = self.query_one("#plugin-snapshot-table", DataTable)
        for index, (label, width) in enumerate(_SNAPSHOT_COLUMNS):
            snapshots.add_column(Text(label, justify="left" if index == 0 else "right"), width=width, key=label)
        self.query_one(LogTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(MetricCharts).chart_height = chart_height(event.size.height)
        if self.is_mounted:
            self._set_event_columns()
            self._draw_events()
            self._set_finding_columns()
            self._draw_findings()
            self._draw_stats()
            self._draw_heading()

    @property
    def range_seconds(self) -> float:
        """Length of the time range shown."""
        return RANGES[self.range_index][1]

    # -- the refresh cycle --------------------------------------------------------

    def panel_query(self) -> PluginQuery:
        """Logs and events after the last ids shown; charts extend the last view when the range is the same."""
        previous = self.view if self.view is not None and self.view.range_seconds == self.range_seconds else None
        groups_due = self._schedule.due(self.generation, time.monotonic())
        return PluginQuery(
            self.plugin_id, self.generation, self.range_seconds, chart_columns(self.app.size.width),
            log_after=self.log_after if self.logs_loaded else None,
            event_after=self.event_after if self.events_loaded else None,
            snapshot_newest=self.snapshot_newest, previous=previous, groups_due=groups_due,
        )

    def show_panel(self, result: object) -> None:
        """Take a read; answers for another plugin, range or position are dropped."""
        if (not isinstance(result, PluginView) or result.plugin_id != self.plugin_id
                or result.generation != self.generation or not self.is_mounted):
            return
        self.view = result
        self._take_logs(result)
        self._take_events(result)
        if result.snapshots is not None:
            self.snapshots = result.snapshots
            self.snapshot_newest = result.newest_snapshot_id
            self._draw_snapshots()
        if result.groups is not None:
            self._schedule.answered(result.generation, time.monotonic())
            self.query_one(ErrorGroupTable).show_groups(result.groups, result.read_at)
            self._set_tab_label("plugin-errors", "Errors", len(result.groups))
        if result.findings != self.findings:
            self.findings = result.findings
            self._draw_findings()
        self.query_one(MetricCharts).show(result)
        self._draw_heading()
        self._draw_stats()

    def _take_logs(self, view: PluginView) -> None:
        if view.log_after != (self.log_after if self.logs_loaded else None):
            return
        table = self.query_one(LogTable)
        if view.log_after is None:
            table.replace_logs(view.logs)
            self.logs_loaded = True
        else:
            table.append_logs(view.logs)
        self.log_after = max([self.log_after, *(log.id or 0 for log in view.logs)])
        self._set_tab_label("plugin-logs", "Logs", table.row_count)

    def _take_events(self, view: PluginView) -> None:
        if view.event_after != (self.event_after if self.events_loaded else None):
            return
        if not self.events_loaded or view.events:
            self.events = [*reversed(view.events), *self.events][:RECENT_EVENTS * 2]
            self._draw_events()
        self.events_loaded = True
        self.event_after = max([self.event_after, *(ev.id or 0 for ev in view.events)])

    # -- drawing ------------------------------------------------------------------

    def _set_tab_label(self, pane: str, name: str, count: int) -> None:
        self.query_one(TabbedContent).get_tab(pane).label = f"{name} {count}"

    def _draw_heading(self) -> None:
        plugin = safe_text(self.plugin_id, "bold")
        plugin.truncate(max(_PLUGIN_ID_WIDTH, self.app.size.width - _HEADING_REST), overflow="ellipsis")
        line = Text.assemble(plugin, "  ")
        view = self.view
        if view is None or view.generation != self.generation:
            status = Text("loading…", style="dim")
        elif view.summary is None:
            status = Text("not in the database", style="bold red")
        else:
            status = Text(view.status, style=STATUS_STYLES.get(view.status, ""))
        line.append_text(status)
        line.append("  range ", "dim")
        line.append(RANGES[self.range_index][0], "bold")
        line.append(" (t)", "dim")
        if view is not None and view.summary is not None:
            summary = view.summary
            line.append("  last seen ", "dim")
            seen = units.age(view.read_at - summary.last_seen)
            line.append(seen if seen == "now" else f"{seen} ago")
            line.append("  first seen ", "dim")
            line.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.first_seen)))
        self.query_one("#plugin-heading", Static).update(line)

    def _draw_stats(self) -> None:
        if self.view is not None:
            stats = _stats_text(self.view.stats, RANGES[self.range_index][0], self.app.size.width - 2)
            self.query_one("#plugin-stats", Static).update(stats)

    def _description_width(self) -> int:
        return self._rest_width(_EVENT_WIDTHS)

    def _rest_width(self, widths: tuple[tuple[str, int], ...]) -> int:
        """What the fixed columns leave of the screen for the last, description column."""
        fixed = sum(width for _, width in widths) + 2 * (len(widths) + 1)
        return max(20, self.app.size.width - fixed - _SCROLLBAR)

    def _set_columns(self, table_id: str, widths: tuple[tuple[str, int], ...]) -> None:
        """Fixed columns and a description filling the rest; rebuilt only when the screen width changed."""
        table = self.query_one(table_id, DataTable)
        width = self._rest_width(widths)
        if table.columns and table.columns.get("description") and table.columns["description"].width == width:
            return
        table.clear(columns=True)
        for label, column_width in widths:
            table.add_column(label, width=column_width, key=label)
        table.add_column("description", width=width, key="description")

    def _set_event_columns(self) -> None:
        self._set_columns("#plugin-event-table", _EVENT_WIDTHS)

    def _draw_events(self) -> None:
        """Newest first; the cursor stays on the event it was on."""
        table = self.query_one("#plugin-event-table", DataTable)
        selected = _key_at_cursor(table)
        table.clear()
        width = self._description_width()
        for ev in self.events:
            severity = str(ev.severity)
            kind = safe_text(ev.event_type, "bold")
            kind.truncate(_EVENT_WIDTHS[2][1], overflow="ellipsis")
            description = safe_text(ev.description)
            description.truncate(width, overflow="ellipsis")
            table.add_row(Text(units.clock(ev.timestamp.timestamp()), style="dim"),
                          safe_text(severity, SEVERITY_STYLES.get(severity, "")), kind, description, key=str(ev.id))
        _restore_cursor(table, selected)
        self._set_tab_label("plugin-events", "Events", len(self.events))

    def _set_finding_columns(self) -> None:
        self._set_columns("#plugin-finding-table", _FINDING_WIDTHS)

    def _finding_width(self) -> int:
        return self._rest_width(_FINDING_WIDTHS)

    def _draw_findings(self) -> None:
        """Newest first, each with the state of what it reported; the cursor stays on its event."""
        table = self.query_one("#plugin-finding-table", DataTable)
        selected = _key_at_cursor(table)
        table.clear()
        width = self._finding_width()
        for finding in self.findings:
            ev = finding.event
            kind = safe_text(ev.event_type, SEVERITY_STYLES.get(str(ev.severity), "") or "bold")
            kind.truncate(_FINDING_WIDTHS[2][1], overflow="ellipsis")
            description = safe_text(ev.description)
            description.truncate(width, overflow="ellipsis")
            table.add_row(Text(units.clock(ev.timestamp.timestamp()), style="dim"),
                          Text(finding.state, style=ALERT_STYLES.get(finding.state, "dim")), kind, description,
                          key=str(ev.id))
        _restore_cursor(table, selected)
        self._set_tab_label("plugin-alerts", "Alerts", len(self.findings))

    def _draw_snapshots(self) -> None:
        """Newest first; the cursor stays on the snapshot it was on."""
        table = self.query_one("#plugin-snapshot-table", DataTable)
        selected = _key_at_cursor(table)
        table.clear()
        for snap in self.snapshots:
            figures = (units.percent(snap.cpu_usage), f"{units.compact(snap.memory_usage)}MB",
                       units.milliseconds(snap.response_time), units.fraction_percent(snap.error_rate),
                       f"{snap.request_count:,}", units.rate(snap.throughput))
            table.add_row(Text(units.clock(snap.timestamp.timestamp()), style="dim"),
                          *(Text(figure, justify="right") for figure in figures), key=str(snap.id))
        _restore_cursor(table, selected)
        self._set_tab_label("plugin-snapshots", "Snapshots", len(self.snapshots))

    # -- keys ---------------------------------------------------------------------

    def action_cycle_range(self) -> None:
        """`t`: the next time range; the charts and statistics are read again at once."""
        self.range_index = (self.range_index + 1) % len(RANGES)
        self.generation = next(_GENERATIONS)
        self._draw_heading()
        self.post_message(RefreshWanted())

    def action_show_metrics(self) -> None:
        """`m`: this plugin in the Metrics tab (leaving this screen)."""
        app, plugin_id = self.app, self.plugin_id
        app.action_show_tab("metrics")
        app.query_one(MetricsTab).select_plugin(plugin_id)

    def action_show_list(self, pane: str) -> None:
        """`l` / `e` / `s`: the logs, events or snapshots list, focused."""
        self.query_one(TabbedContent).active = pane
        self.query_one(f"#{pane}", TabPane).query_one(DataTable).focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()  # the app's handler is for its own tabs
        self.call_after_refresh(event.pane.query_one(DataTable).focus)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if isinstance(event.data_table, LogTable):
            log = event.data_table.log_at_cursor()
            if log is not None:
                self.app.push_screen(LogScreen(log))
        elif event.data_table.id == "plugin-event-table":
            chosen = next((ev for ev in self.events if str(ev.id) == event.row_key.value), None)
            if chosen is not None:
                self.app.push_screen(EventScreen(chosen))
        elif event.data_table.id == "plugin-finding-table":
            found = next((f.event for f in self.findings if str(f.event.id) == event.row_key.value), None)
            if found is not None:
                self.app.push_screen(EventScreen(found))
        elif isinstance(event.data_table, ErrorGroupTable):
            group = event.data_table.group_at_cursor()
            if group is not None and group.example is not None:
                self.app.push_screen(LogScreen(group.example))


def _key_at_cursor(table: DataTable[Text]) -> str | None:
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


def _restore_cursor(table: DataTable[Text], key: str | None) -> None:
    if key is not None and key in table.rows:
        table.move_cursor(row=table.get_row_index(key), animate=False)


def _figure(label: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((label, "dim"), " ", (value, style))


def _uptime(pct: float) -> str:
    """``100%`` only when never down: a short outage never rounds up to it."""
    return "100%" if pct >= 100 else f"{min(pct, 99.9):.1f}%"


def _stats_text(stats: RangeStats, range_name: str, width: int) -> Text:
    """The range's figures, as many to a line as fit in ``width`` (never split inside one figure)."""
    approx = "" if stats.percentiles_exact else "≈"
    requests = "-" if stats.requests is None else f"≈{round(stats.requests):,}"
    parts = [
        Text.assemble((f"last {range_name}:", "bold"), " ", _figure("requests", requests)),
        Text.assemble(_figure("response mean", units.milliseconds(stats.response_mean)), " ",
                      _figure("p50", approx + units.milliseconds(stats.p50)), " ",
                      _figure("p95", approx + units.milliseconds(stats.p95)), " ",
                      _figure("p99", approx + units.milliseconds(stats.p99))),
        _figure("error rate", units.fraction_percent(stats.error_rate)),
        _figure("throughput", units.rate(stats.throughput)),
        _figure("error logs", str(stats.error_logs), "bold red" if stats.error_logs else "bold"),
        _figure("high+ events", str(stats.serious_events), "bold red" if stats.serious_events else "bold"),
        _figure("uptime", _uptime(stats.uptime_pct), "bold" if stats.uptime_pct >= 100 else "bold red"),
    ]
    lines: list[Text] = [Text()]
    for part in parts:
        if lines[-1].cell_len and lines[-1].cell_len + 2 + part.cell_len > width:
            lines.append(Text())
        if lines[-1].cell_len:
            lines[-1].append("  ")
        lines[-1].append_text(part)
    return Text("\n").join(lines)
