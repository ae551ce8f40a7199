"""Entry point of `python -m benchmarks`."""

from __future__ import annotations

from .runner import main

raise SystemExit(main())
