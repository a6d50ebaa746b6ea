"""`python -m mdqcore.cli ...` runs the `mdq` command."""

from .main import main

main()
