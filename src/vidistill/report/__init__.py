"""Reports: Markdown + static HTML from ``results.json`` rows and what a run left on disk.

A report holds, per (dataset, net, labels) group, the paper-shaped table (methods × VPC:
top-1 mean ± std and the paired IOR — mean, 95 % interval, verdict) with its accuracy-vs-VPC
plot; the costs (bytes stored and compression vs the full training set, stage time and
memory, one evaluation); per class strips and GIFs of the chosen and learned clips; a 2-D
projection of a class's pool with each selector's chosen clips; every result in full.
Every number is one a command of this repo wrote into results.json. Hard- and soft-label
results never share a table (DESIGN §4).

* :mod:`~vidistill.report.tables` — tables (no optional dependency);
* :mod:`~vidistill.report.figures` — plots (matplotlib), :mod:`~vidistill.report.media` —
  strips and GIFs (Pillow): both the ``report`` extra; a report made without them says so
  in place of each missing figure, naming ``pip install 'vidistill[report]'``;
* :mod:`~vidistill.report.page` — :func:`write_report`, the page itself;
* :mod:`~vidistill.report.collect` — :func:`report_run` (a run directory) and
  :func:`report_results` (results + store + selection files), as ``vidistill report`` uses.
"""

from vidistill.report.collect import report_results, report_run
from vidistill.report.figures import PoolProjection, accuracy_plot, pca_2d, projection_plot
from vidistill.report.media import ClipSet, class_gallery, clip_gif, frame_strip, grid_gif
from vidistill.report.page import write_report
from vidistill.report.tables import (
    IOR_NOTE,
    cost_rows,
    detail_rows,
    html_table,
    markdown_table,
    pivot_tables,
    read_rows,
)

__all__ = [
    "IOR_NOTE",
    "ClipSet",
    "PoolProjection",
    "accuracy_plot",
    "class_gallery",
    "clip_gif",
    "cost_rows",
    "detail_rows",
    "frame_strip",
    "grid_gif",
    "html_table",
    "markdown_table",
    "pca_2d",
    "pivot_tables",
    "projection_plot",
    "read_rows",
    "report_results",
    "report_run",
    "write_report",
]
