"""``python -m salespipeline``: the command line."""

from salespipeline.cli import main

raise SystemExit(main())
