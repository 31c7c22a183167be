"""Is a trial still training? Degenerate states that a finite loss does not show.

Assessed after every Tune iteration from its metrics (trainables/train.py), as one of:
  d_collapsed      a BCE discriminator whose loss is about 0: it tells every real from
                   every fake with certainty, so the generator gets no gradient
  constant_losses  neither loss moved over the iteration's steps: nothing is learning
  mode_collapse    the fakes look real to the real data's neighbourhoods (density) but
                   cover almost none of them (coverage, trainables/metrics/coverage.py),
                   judged at each evaluation and held until the next
  ok               none of these
The trial's run carries the latest as its `health` tag and each as a 0/1 metric
`health/<name>`, so ASHA's results, the report and the MLflow UI can tell;
`training.stop_on_collapse` ends a trial at the first iteration that is not ok.
"""
import math

# thresholds of a state no healthy trial is in, not tuning knobs: a BCE loss/D is
# -log D(x) - log(1 - D(G(z))), 2 log 2 = 1.39 at balance
D_COLLAPSED_LOSS = 1e-3
CONSTANT_RELATIVE = 1e-6     # max - min of a loss over an iteration, relative to its size
MODE_COLLAPSE_COVERAGE = 0.1
MODE_COLLAPSE_DENSITY = 0.5  # below it, low coverage is fakes far from all real data (early training)
STATES = ("d_collapsed", "constant_losses", "mode_collapse")


def assess(metrics: dict, loss_ranges: dict, wasserstein: bool) -> dict[str, bool]:
    """{state: bool} for each of STATES from one iteration's metrics and the trainer's
    `loss_ranges` (empty for a one-step iteration: constancy is then not judged)."""
    constant = bool(loss_ranges) and all(
        loss_ranges[key] <= CONSTANT_RELATIVE * max(1.0, abs(metrics[key])) for key in ("loss/D", "loss/G"))
    coverage, density = metrics.get("coverage", math.nan), metrics.get("density", math.nan)
    return {"d_collapsed": not wasserstein and metrics["loss/D"] < D_COLLAPSED_LOSS,
            "constant_losses": constant,
            "mode_collapse": coverage < MODE_COLLAPSE_COVERAGE and density >= MODE_COLLAPSE_DENSITY}


def verdict(states: dict[str, bool]) -> str:
    """The `health` tag: the first state that holds, in the order of STATES, else ok."""
    return next((name for name in STATES if states[name]), "ok")


def metrics(states: dict[str, bool]) -> dict[str, float]:
    return {f"health/{name}": float(states[name]) for name in STATES}
