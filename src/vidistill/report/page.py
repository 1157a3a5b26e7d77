"""``report.md`` + ``report.html``: every section of a report, rendered from its inputs.

The HTML page is static and self-contained apart from its image files (beside it, relative
links), so a report folder can be zipped, mailed or served as it is. Its one inline script
only checks, once the page has loaded, that every image did load: a missing one is outlined
in red and counted in a banner at the top, and ``<body data-images="loaded/total">`` lets a
headless browser (tests/test_report_browser.py) read the count.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vidistill import __version__
from vidistill.atomic import write_bytes_atomic
from vidistill.report.figures import PoolProjection, accuracy_plot, projection_plot
from vidistill.report.media import PAD, ClipSet, GalleryItem, class_gallery, gallery_vpc
from vidistill.report.tables import (
    COST_HEADER,
    COST_NOTE,
    DETAIL_HEADER,
    IOR_NOTE,
    STAGE_HEADER,
    cost_rows,
    detail_rows,
    full_train_bytes,
    group_rows,
    html_table,
    markdown_table,
    pivot_tables,
    stage_rows,
)

INSTALL_REPORT = "pip install 'vidistill[report]'"

CHECK_IMAGES = """<script>
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    var good = imgs[i].complete && imgs[i].naturalWidth > 0;
    imgs[i].setAttribute("data-loaded", good ? "yes" : "no");
    if (good) { ok++; } else { imgs[i].classList.add("broken"); }
  }
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
  if (ok < imgs.length) {
    var p = document.getElementById("broken-images");
    p.textContent = (imgs.length - ok) + " of " + imgs.length +
      " images did not load (outlined in red): were files moved out of the report folder?";
    p.hidden = false;
  }
});
</script>"""

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
table.paper td{white-space:nowrap}.acc{font-weight:600}
.ior{font-size:11px;color:#666}.ior.better{color:#137333}.ior.worse{color:#b3261e}
.na{color:#999}
blockquote{margin:.6em 0;padding:.4em .8em;border-left:3px solid #ccc;color:#555;font-size:13px}
.missing{background:#fff4d6;border:1px solid #e0b84c;padding:.5em .8em}
#broken-images{background:#fde8e8;border:1px solid #b3261e;padding:.5em .8em}
img{max-width:100%}img.broken{outline:3px solid #b3261e}
img.pix{image-rendering:pixelated;max-width:none}.gif{display:flex;gap:.5em}
.gif .rows div{display:flex;align-items:center;justify-content:flex-end;font-size:12px}
figure{margin:1em 0}figcaption{font-size:13px;color:#555}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
.clips{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
nav{font-size:14px}nav a{margin-right:1em}footer{margin-top:3em;font-size:12px;color:#888}
"""


def _can_import(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def missing_note(dist: str, what: str) -> str:
    return (
        f"{dist} is not installed, so this report has no {what}. Install it with: {INSTALL_REPORT}"
    )


def _labelled_gif(item: GalleryItem) -> str:
    """The class's GIF at its zoom, each row's method named beside it (HTML text, crisp)."""
    z = item.zoom
    w, h = item.gif_size
    labels = "".join(
        f'<div style="height:{item.row_pitch * z}px">{html.escape(m)}</div>' for m in item.methods
    )
    return (
        f'<div class="gif"><div class="rows" style="padding-top:{PAD * z}px">{labels}</div>'
        f'<img class="pix" src="{html.escape(item.gif)}" width="{w * z}" height="{h * z}" '
        f'alt="{html.escape(item.class_name)}: {html.escape(", ".join(item.methods))}, playing">'
        "</div>"
    )


def write_report(
    rows: Sequence[dict[str, Any]],
    out: str | Path,
    title: str = "vidistill report",
    images: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    *,
    clip_sets: Sequence[ClipSet] = (),
    class_names: Sequence[str] | None = None,
    projections: Sequence[PoolProjection] = (),
    projection_caption: str = "",
    stage_costs: Sequence[Mapping[str, Any]] = (),
    full_bytes: Mapping[str, int] | None = None,
    max_classes: int = 10,
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (plus their images) into ``out``.

    Sections: the paper-shaped table of each (dataset, net, labels) group with its
    accuracy-vs-VPC plot; costs (stored bytes and compression vs ``full_bytes`` — dataset →
    bytes of the full real training set — or a full-real row's; ``stage_costs`` from run
    markers); per class strips + GIFs of ``clip_sets`` (at one VPC); ``projections`` (one
    class's pool in PCA with each selector's choice); every result; ``images``
    (``(caption, path relative to out)``, shown last). A figure that needs a missing
    optional package is replaced by a note naming ``pip install 'vidistill[report]'``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    notes = list(notes)
    if any(r.get("ior_mean") is not None for r in rows):
        notes.append(IOR_NOTE)
    has_pil = _can_import("PIL")
    # matplotlib writes PNGs through Pillow: a plot needs both
    no_mpl = "matplotlib" if not _can_import("matplotlib") else None if has_pil else "pillow"
    md: list[str] = [f"# {title}", ""]
    md += [f"> {n}\n" for n in notes]
    parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    parts.append('<p id="broken-images" hidden></p>')
    parts += [f"<blockquote>{html.escape(n)}</blockquote>" for n in notes]
    nav = ['<a href="#results">Results</a>', '<a href="#costs">Costs</a>']

    def missing(dist: str, what: str) -> None:
        text = missing_note(dist, what)
        md.extend([f"> **{text}**", ""])
        parts.append(f'<p class="missing">{html.escape(text)}</p>')

    def figure(path: str, caption: str, alt: str, extra: str = "") -> None:
        md.extend([f"![{alt}]({path})", "", f"*{caption}*", ""])
        parts.append(
            f'<figure><img src="{html.escape(path)}" alt="{html.escape(alt)}"{extra}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    # -- the paper-shaped tables, each with its plot ---------------------------------------
    parts.append('<h2 id="results">Results</h2>')
    md += ["## Results", ""]
    if not rows:
        md += ["No results yet.", ""]
        parts.append("<p>No results yet.</p>")
    groups = dict(group_rows(rows))
    for k, table in enumerate(pivot_tables(rows)):
        md += [f"### {table['title']}", "", markdown_table(table["header"], table["rows"]), ""]
        parts.append(f"<h3>{html.escape(table['title'])}</h3>")
        parts.append(html_table(table["header"], table["html_rows"], cls="paper"))
        name = "accuracy.png" if k == 0 else f"accuracy_{k}.png"
        if no_mpl:
            missing(no_mpl, "accuracy-vs-VPC plot")
        elif accuracy_plot(groups[table["key"]], out / name, title=table["title"]):
            figure(
                name,
                "top-1 vs VPC: mean ± std over the runs (error bars); full-real as a line "
                "with its ±std band; chance dotted.",
                "accuracy vs VPC",
            )

    # -- costs ----------------------------------------------------------------------------
    parts.append('<h2 id="costs">Costs</h2>')
    md += ["## Costs", ""]
    full = full_train_bytes(rows, full_bytes)
    if full:
        line = "Full real training set: " + ", ".join(
            f"{d} {b / 2**20:.2f} MB" for d, b in sorted(full.items())
        )
        md += [line + ".", ""]
        parts.append(f"<p>{html.escape(line)}.</p>")
    costs = cost_rows(rows, full_bytes, stage_costs)
    md += [markdown_table(COST_HEADER, costs), "", f"> {COST_NOTE}", ""]
    parts += [html_table(COST_HEADER, costs), f"<blockquote>{html.escape(COST_NOTE)}</blockquote>"]
    if stage_costs:
        md += ["### Stages", "", markdown_table(STAGE_HEADER, stage_rows(stage_costs)), ""]
        parts += ["<h3>Stages</h3>", html_table(STAGE_HEADER, stage_rows(stage_costs))]

    # -- chosen and learned clips, per class ------------------------------------------------
    if clip_sets:
        nav.append('<a href="#clips">Clips</a>')
        parts.append('<h2 id="clips">Chosen and learned clips, per class</h2>')
        md += ["## Chosen and learned clips, per class", ""]
        vpc = gallery_vpc(clip_sets)
        shown = [s for s in clip_sets if s.vpc == vpc]
        seeds = sorted({s.seed for s in shown if s.seed is not None})
        names = list(
            class_names or next((r["class_names"] for r in rows if r.get("class_names")), [])
        )
        names = names or list(dict.fromkeys(c for s in shown for c in s.clips))
        intro = (
            f"VPC {vpc}" + (f", run seed {seeds[0]}" if len(seeds) == 1 else "")
            + f": per class, what each method put in its distilled set — {', '.join(s.label for s in shown)}. "
            "The GIF plays each method's clips side by side (one row per method); the strip "
            "shows every clip's frames left to right. Learned videos are their uint8 preview."
        )  # fmt: skip
        if len(names) > max_classes:
            intro += f" First {max_classes} of {len(names)} classes."
        md += [intro, ""]
        parts.append(f"<p>{html.escape(intro)}</p>")
        if not has_pil:
            missing("pillow", "clip strips or GIFs")
        else:
            for i, item in enumerate(class_gallery(shown, names, out, max_classes=max_classes)):
                rows_text = ", ".join(item.methods)
                md += [f"### {item.class_name}", "", f"![{item.class_name}]({item.gif})", ""]
                md += [f"*rows, top to bottom: {rows_text}*", ""]
                md += [f"![{item.class_name} frames]({item.strip})", ""]
                parts.append(
                    f"<details{' open' if i < 2 else ''}><summary>"
                    f"{html.escape(item.class_name)}</summary><div class='clips'>"
                    + _labelled_gif(item)
                    + f'<img src="{html.escape(item.strip)}" alt="{html.escape(item.class_name)}: '
                    "every clip's frames, left to right\"></div></details>"
                )

    # -- a class's pool, projected ------------------------------------------------------------
    if projections:
        nav.append('<a href="#projection">Pool projection</a>')
        parts.append('<h2 id="projection">Pool projection</h2>')
        md += ["## Pool projection", ""]
        if no_mpl:
            missing(no_mpl, "pool projection")
        elif projection_plot(projections, out / "projection.png"):
            figure(
                "projection.png",
                projection_caption
                or "Each class's pool embeddings on their first two principal axes, with the "
                "clips each selector chose.",
                "pool projection",
            )

    # -- everything -------------------------------------------------------------------------
    nav.append('<a href="#all">All results</a>')
    md += ["## All results", "", markdown_table(DETAIL_HEADER, detail_rows(rows)), ""]
    parts += ['<h2 id="all">All results</h2>', html_table(DETAIL_HEADER, detail_rows(rows))]
    for cap, p in images:
        md += [f"### {cap}", "", f"![{cap}]({p})", ""]
        parts += [
            f"<h3>{html.escape(cap)}</h3>",
            f'<img src="{html.escape(p)}" alt="{html.escape(cap)}">',
        ]
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    footer = f"vidistill {__version__} — {stamp}"
    md += ["---", footer, ""]
    parts.append(f"<footer>{html.escape(footer)}</footer>")
    parts.insert(2, "<nav>" + "".join(nav) + "</nav>")  # after the title and the banner

    write_bytes_atomic(out / "report.md", "\n".join(md).encode(), durable=False)
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + f"\n{CHECK_IMAGES}</body></html>\n"
    )
    write_bytes_atomic(out / "report.html", page.encode(), durable=False)
    return out / "report.md", out / "report.html"
