"""The Textual console (``pmon tui``).

Nothing outside this package imports it, so recording code never pays for
Textual. Data flows one way: ``reader`` (no Textual) reads the store on a
worker thread, ``messages`` carry the results, tabs and screens render them.
"""
