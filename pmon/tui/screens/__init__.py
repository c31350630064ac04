"""Screens pushed over the tabs (log detail, help)."""
