"""`vidistill synthesize` — not built yet (see the issues)."""
