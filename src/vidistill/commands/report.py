"""`vidistill report` — not built yet (see the issues)."""
