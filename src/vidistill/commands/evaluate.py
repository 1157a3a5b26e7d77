"""`vidistill evaluate` — not built yet (see the issues)."""
