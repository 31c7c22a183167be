"""Tune's status block as the quiet console prints it."""
from types import SimpleNamespace

from platform.driver import console

TUNE_STATUS = ("== Status ==\nCurrent time: now\nCurrent best trial: 0a207501 with best/fid=431.5 and "
               "parameters={'training': {'lr_g': 0.0002}, 'evaluation': {'samples': 64, 'kid': True}}\n"
               "Number of trials: 2/6 (2 RUNNING)\n+---table---+")


class Named(SimpleNamespace):
    def __str__(self):
        return self.name


def test_the_status_names_the_best_trial_and_its_score_not_its_config(monkeypatch):
    from ray import tune
    console.setup(False)
    reporter = console.tune_output(["training.lr_g"], "sqlite:///mlflow.db")["progress_reporter"]
    monkeypatch.setattr(tune.CLIReporter, "_progress_str", lambda self, trials, done, *info, fmt, delim: TUNE_STATUS)
    trials = [Named(name=f"dcgan1 #{i} lr_g={i + 1}.0e-4", last_result={"best/fid": score}, status="RUNNING")
              for i, score in enumerate((512.25, 431.5))]
    monkeypatch.setattr(type(reporter), "_current_best_trial", lambda self, trials: (trials[1], "best/fid"))
    text = reporter._progress_str(trials, False)
    assert text.splitlines()[2] == "Current best trial: dcgan1 #1 lr_g=2.0e-4 with best fid 431.5"
    assert "parameters=" not in text and text.splitlines()[3].startswith("Number of trials")
    monkeypatch.setattr(type(reporter), "_current_best_trial", lambda self, trials: (None, None))
    assert reporter._progress_str(trials, False) == TUNE_STATUS  # no best yet: Tune's text as it is
