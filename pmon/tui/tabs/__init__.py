"""The console's tabs, one a module."""
