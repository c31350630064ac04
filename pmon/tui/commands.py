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
        needle = query.strip().lower()
        for plugin_id in self._plugins():
            score = plugin_score(needle, f"plugin: {plugin_id}".lower())
            if score > 0:
                yield Hit(score, self._hit_text(plugin_id), partial(self._open, plugin_id),
                          text=f"Plugin: {plugin_id}", help="Open the plugin screen")

    def _open(self, plugin_id: str) -> None:
        self.app.post_message(OpenPlugin(plugin_id))


def plugin_score(needle: str, title: str) -> float:
    """How well a lowercase query fits a lowercase "plugin: ID" title (0: not at all), in time linear in it.

    Why not Textual's fuzzy matcher: it tries every placement of the query's
    letters, and a recorded id of 120 'a's against a six-letter query took
    minutes on the event loop; ids are recorded data, anyone can make one.
    """
    if not needle:
        return 0.0
    if title == needle:
        return 1.0
    if title.startswith(needle):
        return 0.9
    if needle in title:
        return 0.8
    position = 0
    for letter in needle:  # the left-most subsequence, greedily
        position = title.find(letter, position) + 1
        if position == 0:
            return 0.0
    return 0.5 * len(needle) / len(title)
