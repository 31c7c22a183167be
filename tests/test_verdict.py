"""The one verdict (trainables/verdict.py), the one number formatter (platform/spec/numbers.py)
and trial names numbered by Tune's own count (platform/spec/tune_space.py), the last against
the locked Ray's search generators."""
import math
import tempfile

import pytest

from platform.spec.numbers import shown
from trainables import verdict


def test_a_score_is_the_lowest_finite_fid_and_its_first_step():
    assert verdict.score([(30, 5.0), (10, 4.0), (20, 4.0), (40, math.nan)]) == verdict.Score(4.0, 10)
    assert verdict.score([(10, math.inf)]) is None and verdict.score([]) is None
    best = verdict.Score(4.0, 10)
    assert verdict.improves(3.9, best) and not verdict.improves(4.0, best) and verdict.improves(9.0, None)
    assert not verdict.improves(math.nan, None)


def test_the_winner_is_ranked_by_score_then_name_and_never_across_embeddings():
    trials = [("b", verdict.Score(4.0), "e"), ("a", verdict.Score(4.0), "e"), ("c", None, "f"),
              ("d", verdict.Score(9.0), "e")]
    score, name, embedding = (lambda t: t[1]), (lambda t: t[0]), (lambda t: t[2])
    assert [t[0] for t in verdict.rank(trials, score, name)] == ["a", "b", "d", "c"]
    assert verdict.winner(trials, score, name, embedding)[0] == "a"  # "c" has no score: its embedding is moot
    assert verdict.winner([t for t in trials if t[0] == "c"], score, name) is None
    with pytest.raises(verdict.Incomparable, match="2 embeddings"):
        verdict.winner(trials + [("x", verdict.Score(1.0), "f")], score, name, embedding)


def test_a_trial_is_stopped_only_by_a_decision_before_its_length():
    assert str(verdict.stopped("asha", 2, 8)) == "asha at iteration 2 of 8"
    assert verdict.stopped("asha", 8, 8) is None  # ASHA's max_t: the trial's end
    assert verdict.stopped("asha", None, 8) is None  # it ended by itself (its epochs)


@pytest.mark.parametrize("value, digits, text", [
    (3e-4, 2, "3.0e-4"), (0.47, 2, "0.47"), (16, 2, "16"), (612.34, 4, "612.3"), (1234.6, 4, "1235"),
    (123456.0, 4, "1.235e5"), ("0.000123456", 3, "1.23e-4"), ("16", 3, "16"), ("adam", 3, "adam"),
    (None, 4, ""), (math.inf, 4, ""), ("", 4, ""), (0.0, 4, "0")])
def test_numbers_read_the_same_everywhere(value, digits, text):
    assert shown(value, digits) == text


@pytest.mark.parametrize("searcher", ["random", "optuna"])
def test_trials_are_numbered_from_0_by_tunes_own_count(searcher):
    """What tune_count reads (the lead of a trial's experiment_tag) is Tune's count of created
    trials under both of the locked Ray's generators: the names number 0, 1, 2."""
    from ray import tune
    from ray.tune.experiment import Experiment
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.search_generator import SearchGenerator

    from platform.spec.optuna_search import OptunaOnEvaluations
    from platform.spec.tune_space import TrialNames
    names = TrialNames(("training.lr_g",), 0 if searcher == "random" else 1)
    config = {"model": {"family": "dcgan1"}, "training": {"lr_g": tune.loguniform(1e-4, 1e-3)}}
    experiment = Experiment("x", lambda config: None, config=config, num_samples=3, storage_path=tempfile.mkdtemp(),
                            trial_name_creator=names.name, trial_dirname_creator=names.dirname)
    if searcher == "random":
        generator = BasicVariantGenerator()
    else:
        optuna = OptunaOnEvaluations(seed=0)
        optuna.set_search_properties("fid", "min", config)
        generator = SearchGenerator(optuna)
    generator.add_configurations([experiment])
    trials = [generator.next_trial() for _ in range(3)]
    assert [str(t).split(" lr_g=")[0] for t in trials] == ["dcgan1 #0", "dcgan1 #1", "dcgan1 #2"]
    assert all(names.dirname(t).startswith(f"dcgan1-{i}_lr_g=") for i, t in enumerate(trials))


class _Trial:
    def __init__(self, trial_id: str, last: dict, status: str = "TERMINATED"):
        self.trial_id, self.last_result, self.status = trial_id, last, status
        self.config = {"training": {}}


def test_trial_ends_takes_stopped_from_tunes_decision_not_from_a_count(monkeypatch):
    """platform/driver/trial_ends.py: a trial Tune ended (its result marked done) before its
    length is stopped; one that ended by itself, or at its length, is not, whatever it ran;
    the time budget stops the trials it terminates without completing them."""
    from platform.driver.trial_ends import TrialEnds
    said, tagged = [], []
    ends = TrialEnds(None, "asha", lambda config: 8, time_budget=True,
                     say=lambda trial, done, length, stop: said.append((trial.trial_id, done, length, stop and str(stop))))
    monkeypatch.setattr(ends, "_tag", lambda trial, length, stop, step: tagged.append((trial.trial_id, stop and str(stop))))
    stopped = _Trial("a", {"training_iteration": 2, "step": 20})
    ends.on_trial_result(0, [], stopped, {"training_iteration": 2, "done": True})
    ends.on_trial_complete(0, [], stopped)
    itself = _Trial("b", {"training_iteration": 3, "step": 30})  # ended by itself: no decision
    ends.on_trial_result(0, [], itself, {"training_iteration": 3, "done": False})
    ends.on_trial_complete(0, [], itself)
    at_max_t = _Trial("c", {"training_iteration": 8})
    ends.on_trial_result(0, [], at_max_t, {"training_iteration": 8, "done": True})  # ASHA's max_t
    ends.on_trial_complete(0, [], at_max_t)
    ends.on_experiment_end([stopped, itself, at_max_t, _Trial("d", {"training_iteration": 5}),
                            _Trial("e", {}), _Trial("f", {"training_iteration": 1}, status="RUNNING")])
    assert said == [("a", 2, 8, "asha at iteration 2 of 8"), ("b", 3, 8, None), ("c", 8, 8, None),
                    ("d", 5, 8, "time budget at iteration 5 of 8")]
    assert tagged == [(t, s) for t, _, _, s in said]
