"""vidistill: video dataset distillation (generate-then-select and synthesis) with a fair evaluator."""

__version__ = "0.1.0"
