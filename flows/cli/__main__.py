"""``python -m flows.cli``."""

from . import main

main()
