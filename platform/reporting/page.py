"""The sweep's comparison page (platform.report writes it): one self-contained HTML file.

Charts are the report's figure files (SVG or PNG) and sample grids PNG, audio WAV, all as
data: URIs inside the page; the
table's sorting is a few lines of inline script. Nothing is fetched when it is viewed, so it
opens the same from disk, from MLflow's artifact view of the parent run, or mailed along.
Only the `top` trials carry media (their size bounds the page's); every trial is in the table.
"""
import base64
import html
import io
import math
from pathlib import Path

from platform.spec import numbers

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.charts img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1em; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em; }
.card img { width: 100%; cursor: zoom-in; } .card audio { width: 100%; }
figure { margin: 0.3em 0 1em; } figcaption { color: #555; font-size: 0.92em; margin-top: 0.2em; }
.rank { display: inline-block; background: #333; color: #fff; border-radius: 3px; padding: 0 0.35em; margin-right: 0.3em; }
dialog#full { padding: 0; border: 0; max-width: 98vw; max-height: 98vh; overflow: auto; cursor: zoom-out; }
dialog#full img { display: block; }
.card h3 { font-size: 0.95em; margin: 0 0 0.3em; word-break: break-word; }
.stopped { color: #b35900; } .failed { color: #b00; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
td.name, th.name { text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
.note { color: #555; }
"""

# Click a column's header to sort by it (numbers as numbers, blanks last); again to reverse.
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, column) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const ascending = th.getAttribute('aria-sort') !== 'ascending';
  th.closest('tr').querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
  const key = row => { const v = row.cells[column].dataset.v ?? row.cells[column].textContent;
                       const n = parseFloat(v); return v === '' ? null : (isNaN(n) ? v : n); };
  const rows = [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);
    return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
// A sample grid opens at its full size on click; a click (or Esc) closes it.
const full = document.getElementById('full');
document.querySelectorAll('img.zoom').forEach(img => img.addEventListener('click', () => {
  full.querySelector('img').src = img.src; full.querySelector('img').alt = img.alt; full.showModal(); }));
full.addEventListener('click', () => full.close());
"""

# what each chart shows, under it
CHART_CAPTIONS = {
    "fid_curves": "Each of the best trials' fid at every evaluation, one shared axis; x marks where the scheduler "
                  "stopped a trial; the dashed line is the real-vs-real baseline.",
    "fid_per_trial": "Each trial's score (bar: its best fid, at the step named), orange where the scheduler stopped "
                     "it early; the black tick is its final fid.",
    "score_vs_speed": "Every trial's score against its training throughput; the best trials labelled by their trial "
                      "number (#N, as in their names), trials on one point by one label.",
    "loss_curves": "Discriminator and generator losses (and the Wasserstein estimate of WGANs) against generator "
                   "steps, per trial."}
CHART_TITLES = {"fid_curves": "fid during training", "fid_per_trial": "Score per trial",
                "score_vs_speed": "Score against training speed", "importance": "Parameter importance",
                "loss_curves": "Loss evolution"}


MIME = {".svg": "image/svg+xml", ".png": "image/png"}


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chart(path: Path) -> str:
    """A figure file (SVG or PNG) as the data: URI the page shows."""
    return _data_uri(MIME[path.suffix], path.read_bytes())


def chart_of(figure) -> str:
    """A matplotlib figure, drawn as SVG, as a data: URI."""
    out = io.BytesIO()
    figure.savefig(out, format="svg")
    return _data_uri(MIME[".svg"], out.getvalue())


def _cell(text, sort_value=None, cls: str = "") -> str:
    v = "" if sort_value is None else f' data-v="{html.escape(str(sort_value))}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{v}>{html.escape(str(text))}</td>"


def _table(trials: list[dict]) -> str:
    keys = list(trials[0]["values"]) if trials else []
    head = ["rank", "trial", "status", "stopped", "best fid (score)", "at step", "final fid", "at step", "img/s",
            "mos", *keys]
    rows = []
    for t in trials:
        status = t["status"] + (f": {t['failure']}" if t.get("failure") else "")
        cells = [_cell(t["rank"], t["rank"]), _cell(t["name"], cls="name"),
                 _cell(status, cls="failed" if t["status"] == "FAILED" else ""),
                 _cell(t["stopped"], cls="stopped" if t["stopped"] else ""),
                 _cell(numbers.shown(t["best_fid"]), numbers.shown(t["best_fid"], 12)),
                 _cell(numbers.shown(t.get("best_step"))),
                 _cell(numbers.shown(t["final_fid"]), numbers.shown(t["final_fid"], 12)),
                 _cell(numbers.shown(t.get("final_step"))),
                 _cell(numbers.shown(t["speed"], 3), numbers.shown(t["speed"], 12)),
                 _cell(numbers.shown(t.get("mos"), 3))]
        cells += [_cell(numbers.shown(t["values"].get(key, ""), 3), t["values"].get(key, "")) for key in keys]
        rows.append(f"<tr data-run=\"{html.escape(t['run_id'])}\">{''.join(cells)}</tr>")
    header = "".join(f'<th class="{"name" if h == "trial" else ""}">{html.escape(h)}</th>' for h in head)
    return (f'<table class="sortable" id="trials"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _card(t: dict) -> str:
    stop = f'<div class="stopped">stopped: {html.escape(t["stopped"])}</div>' if t.get("stopped") else ""
    step = f" at step {t['best_step']}" if t.get("best_step") is not None else ""

    def at(key: str) -> str:  # the step a medium is from, beside the score's
        shown = t.get(f"{key}_step")
        if shown is None:
            return ""
        return (f"step {shown}, the step of its score" if shown == t.get("best_step")
                else f"step {shown} (the score's step {t.get('best_step')} has none logged)")
    image = (f'<figure><img class="zoom" alt="{html.escape(t.get("samples_artifact", ""))}" '
             f'title="click for full size" src="{_data_uri("image/png", Path(t["samples"]).read_bytes())}">'
             f'<figcaption>Samples at {at("samples")}: {html.escape(t.get("samples_artifact", ""))} '
             "(click for full size)</figcaption></figure>" if t.get("samples")
             else '<p class="note">no sample grid logged</p>')
    audio = (f'<figure><audio controls preload="auto" title="{html.escape(t.get("audio_artifact", ""))}" '
             f'src="{_data_uri("audio/wav", Path(t["audio"]).read_bytes())}"></audio>'
             f'<figcaption>Sound at {at("audio")}: {html.escape(t.get("audio_artifact", ""))}</figcaption></figure>'
             if t.get("audio") else '<p class="note">no audio logged</p>')
    return (f'<div class="card" data-run="{html.escape(t["run_id"])}"><h3><span class="rank" title="rank by score">'
            f'rank {t["rank"]}</span>{html.escape(t["name"])}</h3>'
            f'<div>score: best fid {numbers.shown(t["best_fid"])}{step}</div>{stop}{image}{audio}</div>')


def write(path: Path, *, sweep: str, parent_run_id: str, trials: list[dict], top: list[dict], charts: dict[str, str],
          importance_note: str, baseline: float | None, embedding: str) -> None:
    """`charts`: {figure name: its data: URI (chart)}; `top`: the trials with media (add_media)."""
    winner = trials[0] if trials and math.isfinite(trials[0]["best_fid"]) else None
    verdict = (f"Winner: <b>{html.escape(winner['name'])}</b>, best fid {numbers.shown(winner['best_fid'])}"
               + (f" at step {winner['best_step']}" if winner.get("best_step") is not None else "")
               if winner else "No trial was scored.")
    floor = f"; real vs real: {baseline:.4g}" if baseline is not None else ""
    shown = [name for name in ("fid_curves", "fid_per_trial", "score_vs_speed", "importance", "loss_curves")
             if name in charts]
    captions = {**CHART_CAPTIONS, "importance": importance_note}
    figures = "".join(f'<h2>{CHART_TITLES[name]}</h2><figure id="chart-{name}"><img alt="{name}" '
                      f'src="{charts[name]}"><figcaption>{html.escape(captions[name])}</figcaption></figure>'
                      for name in shown)
    if "importance" not in charts:
        figures += f'<h2>Parameter importance</h2><p class="note">{html.escape(importance_note)}</p>'
    more = (f'<p class="note">The {len(top)} best of {len(trials)} trials are shown with their samples; '
            "every trial is in the table below.</p>" if len(trials) > len(top) else "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Sweep {html.escape(sweep)}</title><style>{STYLE}</style></head>
<body>
<h1>Sweep {html.escape(sweep)}: {len(trials)} trials</h1>
<p>{verdict}{floor}. A trial's score is the best fid it was evaluated at (fid in {html.escape(embedding or '?')},
lower is better); the sweep's summary, results.csv and platform.generate --experiment use the same.
MLflow parent run <code>{html.escape(parent_run_id)}</code>.</p>
<div class="charts">{figures}</div>
<h2>Samples and sound, side by side</h2>{more}
<p class="note">Each of the best trials, by rank (1 is the lowest score), with the sample grid and sound of the
step its score was taken at. A trial's number (#N in its name) is its order in the sweep.</p>
<div class="cards">{''.join(_card(t) for t in top)}</div>
<h2>Every trial</h2>
<p class="note">Click a column to sort by it. "stopped": the scheduler ended the trial early, at that iteration.</p>
{_table(trials)}
<dialog id="full"><img alt=""></dialog>
<script>{SCRIPT}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
