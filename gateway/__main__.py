"""`python -m gateway ...` is the same as the `sen` command."""

from gateway.cli import main

raise SystemExit(main())
