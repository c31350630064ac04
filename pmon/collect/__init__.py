"""The collector daemon (`pmon collect`): samples plugin processes, records lifecycle events and snapshots.

Headless: nothing under this package imports Textual.
"""
