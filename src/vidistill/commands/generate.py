"""`vidistill generate` — not built yet (see the issues)."""
