"""benchmarks/loaded_ci.py on stand-in repositories whose `.ci/run` prints a pytest-like
closing line: every clone runs at once, each run's closing line and exit status are
reported, a failed run fails the whole, and the heavy loop is gone afterwards."""
import subprocess
import sys

from tests.helpers import ROOT


def _repo(path, ci_run: str):
    (path / ".ci").mkdir(parents=True)
    (path / ".ci" / "run").write_text(ci_run)
    for command in (["init", "-q"], ["add", "."],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "stand-in"]):
        subprocess.run(["git", "-C", str(path), *command], check=True)
    return path


def _loaded_ci(tmp_path, source, *args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loaded_ci.py"), "--source", str(source),
                           "--work", str(tmp_path / "work"), *args],
                          capture_output=True, text=True, timeout=600)


def test_every_clone_runs_at_once_and_reports_its_closing_line(tmp_path):
    # each run waits until all three have started: they ran at once, not one after another
    source = _repo(tmp_path / "green", 'touch "../started-$(basename "$PWD")"\n'
                   'while [ "$(ls ../started-* | wc -l)" -lt 3 ]; do sleep 0.1; done\n'
                   'pgrep -f "torch.set_num_threads.*$(dirname "$PWD")" > /dev/null && echo "beside the loop"\n'
                   'echo "noise"; echo "===== 7 passed in 1.00s ====="; echo "CI=$CI"\n')
    result = _loaded_ci(tmp_path, source, "--heavy-threads", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for n in (1, 2, 3):
        assert any(line.startswith(f"ci{n}: ===== 7 passed in 1.00s =====   exit 0 after") for line in lines), lines
        assert (tmp_path / "work" / f"ci{n}.log").read_text().startswith("beside the loop\n")
        assert (tmp_path / "work" / f"ci{n}.log").read_text().endswith("CI=true\n")
    assert "one-minute load, " in lines[-1]
    loop = subprocess.run(["pgrep", "-f", f"torch.set_num_threads.*{tmp_path / 'work'}"], capture_output=True)
    assert loop.returncode == 1, f"the heavy loop is still running: {loop.stdout}"


def test_a_failed_run_fails_the_whole(tmp_path):
    source = _repo(tmp_path / "red", 'echo "===== 1 failed, 6 passed in 1.00s ====="; exit 1\n')
    result = _loaded_ci(tmp_path, source, "--runs", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ci2: ===== 1 failed, 6 passed in 1.00s =====   exit 1 after" in result.stdout
