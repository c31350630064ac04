"""Pure analyses over recorded data, shared by the console, the CLI and the API (no Textual, no SQL)."""
