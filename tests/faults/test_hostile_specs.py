"""A search-space file an attacker or an unlucky user wrote: an alias bomb, a 50 MB value,
nesting thousands deep, Latin-1 text, a directory, a FIFO, /dev/zero, a URL file that is a
device, a grid of a million points. Each is one short SpecError (exit 2 on the command
line), read in bounded time and memory, never a traceback or a hang."""
import os
import threading

import pytest
import yaml

from platform.spec import spaces
from platform.spec.overrides import parse
from platform.spec.typed import SpecError
from tests.helpers import TINY_DATASET, write_spec

SHORT = 600  # characters: one sentence, whatever the file holds


def _load_within(path, deadline: float = 60.0, overrides=None) -> str:
    """spaces.load(path) in a daemon thread: its SpecError's message, or a failure if it
    raised anything else or had not returned by `deadline` (a FIFO blocks open() forever)."""
    outcome = {}

    def load():
        try:
            spaces.load(path, overrides)
            outcome["loaded"] = True
        except BaseException as error:  # noqa: BLE001 - the test reports what it was
            outcome["error"] = error

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"spaces.load({path}) had not returned after {deadline:.0f} s"
    assert isinstance(outcome.get("error"), SpecError), outcome
    message = str(outcome["error"])
    assert len(message) < SHORT and "\n" not in message, message[:2000]
    return message


def _bomb(levels: int) -> str:
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "search:\n" + "\n".join(lines) + f"\nname: *a{levels}\n"


def test_yaml_aliases_that_expand_past_the_bound_are_refused(tmp_path):
    # six levels: 9**7 strings, a 27 MB error line before; nine levels filled memory
    file = tmp_path / "bomb.yaml"
    file.write_text(_bomb(6))
    message = _load_within(file)
    assert message.startswith(f"{file}: line ") and "holds more than 100,000 values" in message, message
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: loop\nsearch: &a {training.lr_g: [*a]}\n")
    assert "an alias refers to the collection it is in" in _load_within(loop)
    fine = tmp_path / "fine.yaml"  # a few aliases, as yaml.safe_dump writes for a shared list, load
    fine.write_text("name: fine\ntune: {searcher: random}\nsearch:\n  training.lr_g: {grid: &g [0.001, 0.002]}\n"
                    "  training.lr_d: {grid: *g}\n")
    assert spaces.load(fine).trial_count() == 16  # 4 samples x 2 x 2


def test_a_huge_value_is_echoed_as_a_short_preview(tmp_path):
    file = write_spec(tmp_path / "big.yaml", name="big", model={"family": "x" * 900_000})
    message = _load_within(file)
    assert "model.family" in message and "(900000 characters)" in message, message


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path):
    file = write_spec(tmp_path / "padded.yaml", name="padded", dataset=TINY_DATASET)
    with open(file, "a") as out:
        out.write(("# padding\n" * 1000) * ((1 << 20) // 10_000 + 1))
    assert "larger than 1 MiB" in _load_within(file)


@pytest.mark.parametrize("depth", [900, 10_000])
def test_deep_nesting_in_the_file_or_through_set_is_refused(tmp_path, depth):
    file = tmp_path / "deep.yaml"
    file.write_text("name: deep\nsearch: " + "[" * depth + "]" * depth + "\n")
    assert "nested more than 32 levels" in _load_within(file)
    plain = write_spec(tmp_path / "plain.yaml", name="plain")
    message = _load_within(plain, overrides=["search.training.lr_g=" + "[" * depth + "]" * depth])
    assert message.startswith("--set 'search.training.lr_g=[[[[") and "characters)" in message, message
    assert "nested more than" in message, message


def test_latin1_a_directory_and_a_fifo_are_one_sentence(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    assert "is not UTF-8 text (byte 0xe9 at offset 9)" in _load_within(latin)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert "is a directory" in _load_within(folder)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    try:
        assert "is a FIFO" in _load_within(fifo)
    finally:  # an unfixed loader is still blocked in open(): a writer lets it go
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(fifo) else None
        if fd is not None:
            os.close(fd)


def _has_reader(fifo) -> bool:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:  # ENXIO: nobody has it open for reading
        return False


def test_dev_zero_is_refused_without_reading_it():
    assert "is a character device" in _load_within("/dev/zero")


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_a_url_file_that_is_no_regular_file_is_refused_at_load(tmp_path, source):
    if source == "fifo":
        source = str(tmp_path / "urls.fifo")
        os.mkfifo(source)
    file = write_spec(tmp_path / "urls.yaml", name="urls", dataset={"url_files": [source]})
    message = _load_within(file)
    assert f"dataset: url_files[0]: {source} is not a regular file" in message, message


def test_a_huge_grid_is_refused_with_its_size_and_a_dry_run_counts_trials(tmp_path, capsys):
    grid = [round(1e-5 * (i + 1), 8) for i in range(1000)]
    file = write_spec(tmp_path / "grid.yaml", name="grid", tune={"searcher": "random", "num_samples": 1},
                      search={"training.lr_g": {"grid": grid}, "training.lr_d": {"grid": grid}})
    message = _load_within(file)
    assert "asks for 1,000,000 trials" in message and "search.training.lr_d 1,000" in message, message
    small = write_spec(tmp_path / "small.yaml", name="small", experiments={"a": {}, "b": {}},
                       tune={"searcher": "random", "num_samples": 3},
                       search={"training.lr_g": {"grid": grid[:4]}})
    from platform import sweep
    assert sweep.main([str(small), "--dry-run"]) == 0
    assert "trials in all: 24," in capsys.readouterr().out  # 3 samples x 4 grid points x 2 experiments


def test_set_values_are_parsed_with_the_same_bounds():
    with pytest.raises(SpecError, match="nested more than"):
        parse(["search.training.lr_g=" + "[" * 40 + "]" * 40], spaces.SpecLoader)
    assert parse(["tune.num_samples=4"], spaces.SpecLoader) == {"tune.num_samples": 4}
    assert yaml.load("[" * 32 + "]" * 32, Loader=spaces.SpecLoader) is not None  # up to the bound, fine
