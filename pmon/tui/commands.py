"""Command palette (Ctrl+P): pmon's main actions, and "open plugin" for every plugin by id."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from pmon.tui.messages import OpenPlugin
from pmon.tui.safe_text import safe_text

if TYPE_CHECKING:
    from pmon.tui.app import PmonApp


class PluginCommands(Provider):
    """"Plugin: <id>" for each plugin of the latest reading; choosing one opens its screen.

    Titles are built as ``Text`` through ``safe_text``: Textual's own fuzzy
    highlighter parses titles as markup, and plugin ids are recorded data.
    """

    def _plugins(self) -> list[str]:
        app: PmonApp = self.app  # type: ignore[assignment]
        overview = app.overview_tab.overview
        return [row.plugin_id for row in overview.rows] if overview is not None and app.has_data else []

    def _hit_text(self, plugin_id: str) -> Text:
        return Text.assemble("Plugin: ", safe_text(plugin_id, "bold"))

    async def discover(self) -> Hits:
        for plugin_id in self._plugins()[:20]:
            yield DiscoveryHit(self._hit_text(plugin_id), partial(self._open, plugin_id),
                               text=f"Plugin: {plugin_id}", help="Open the plugin screen")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for plugin_id in self._plugins():
            title = f"Plugin: {plugin_id}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, self._hit_text(plugin_id), partial(self._open, plugin_id), text=title,
                          help="Open the plugin screen")

    def _open(self, plugin_id: str) -> None:
        self.app.post_message(OpenPlugin(plugin_id))
