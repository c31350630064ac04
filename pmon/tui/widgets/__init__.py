"""Widgets shared by the tabs and screens, one a module."""
