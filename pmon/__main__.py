"""`python -m pmon` is the `pmon` command."""

from pmon.cli import main

main()
