"""`vidistill select` — not built yet (see the issues)."""
