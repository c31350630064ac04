"""Bridges from other ways of reporting (the standard library's logging) into the monitor.

Nothing here is imported by ``import pmon``: a host pays for an integration
only when it asks for it.
"""
