"""Ray Tune's OptunaSearch for trials that report `fid` only at evaluated iterations.

Trials evaluate where the scheduler reads fid (platform/spec/tune_space.py,
`evaluation_schedule`); OptunaSearch.on_trial_result indexes the metric in every result
and would fail on the others, so it is given only the results that carry it: Optuna's
intermediate values are then the evaluated fids, at their iterations. A module of its own
(not a class made inside a function) so that Tune can pickle the searcher with the sweep.
"""
from ray.tune.search.optuna import OptunaSearch


class OptunaOnEvaluations(OptunaSearch):
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)
