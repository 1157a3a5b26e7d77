"""The evaluation protocol (DESIGN §4): the ruler every method is measured with.

    from vidistill.evaluate import Recipe, TrainingSet, evaluate, train_net
    row = evaluate(TrainingSet.from_store(store, idx), store, Recipe.preset("toy-quick"), runs=3)

Train a fresh network on a training set (real clips, a selection, or learned videos),
test it on the REAL test split, report the final epoch (never a test-selected one).
"""

from vidistill.evaluate.metrics import classification_metrics
from vidistill.evaluate.protocol import (
    combine_runs,
    evaluate,
    full_real,
    load_selection,
    random_indices,
    random_subset,
    selection_set,
    summarise_runs,
)
from vidistill.evaluate.recipe import PRESETS, Recipe
from vidistill.evaluate.results import format_markdown_table, load_results, update_results
from vidistill.evaluate.train import TrainStats, predict, resolve_device, train_net
from vidistill.evaluate.trainset import TrainingSet

__all__ = [
    "PRESETS",
    "Recipe",
    "TrainStats",
    "TrainingSet",
    "classification_metrics",
    "combine_runs",
    "evaluate",
    "format_markdown_table",
    "full_real",
    "load_results",
    "load_selection",
    "predict",
    "random_indices",
    "random_subset",
    "resolve_device",
    "selection_set",
    "summarise_runs",
    "train_net",
    "update_results",
]
