"""Names a user or a remote site chooses never become a path outside the storage root: a
search space's names are refused at load (exit 2 naming the key, nothing written), a video
id from a site is hashed, and an object-store key with `..` is not copied."""
import pytest

from data import download, remote
from platform.spec import spaces
from platform.spec.typed import SpecError
from tests.helpers import TINY_DATASET, run_module, write_spec

HOSTILE = ["../../escape", "/etc/cron.d/x", "a/b", "..", "nul\x00byte", "x" * 101, "%(title)s", ""]


def _sections(tmp_path, key: str, hostile: str) -> dict:
    sections = {"name": "ok", "dataset": TINY_DATASET, "storage": {"root": str(tmp_path / "root")},
                "tune": {"searcher": "random"}}
    if key == "name":
        sections["name"] = hostile
    elif key == "mlflow.experiment":
        sections["mlflow"] = {"experiment": hostile}
    else:
        sections["experiments"] = {hostile: {"training": {"iterations": 2}}}
    return sections


@pytest.mark.parametrize("key", ["name", "mlflow.experiment", "experiments"])
def test_a_hostile_name_is_refused_at_load_naming_the_key(tmp_path, key):
    for hostile in HOSTILE:
        spec = write_spec(tmp_path / "hostile.yaml", **_sections(tmp_path, key, hostile))
        where = f"experiments.{hostile}" if key == "experiments" else key
        with pytest.raises(SpecError, match="is not a plain name") as error:
            spaces.load(spec)
        assert f"hostile.yaml: {where}: " in str(error.value), str(error.value)


@pytest.mark.slow
def test_the_sweep_exits_2_before_anything_is_written(tmp_path):
    spec = write_spec(tmp_path / "hostile.yaml", **_sections(tmp_path, "name", "../../escape"))
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=900)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "hostile.yaml: name: '../../escape' is not a plain name" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml"]  # no store, no root
    assert not (tmp_path.parent.parent / "escape").exists()


def test_video_ids_from_a_site_never_become_paths():
    for hostile in ["../../escape", "/etc/passwd", "a%(title)s", "x\x00y", "a/b", "." * 3]:
        key = download._key("Youtube", hostile, "https://example.com/v")
        assert download.SAFE_KEY.fullmatch(key) and "/" not in key and "." not in key, key
    assert download._key("Youtube", "dQw4w9WgXcQ", "u") == "youtube-dQw4w9WgXcQ"  # a real id is kept
    with pytest.raises(download.FetchError, match="not a plain video id"):
        download.download("https://example.com/v", "../../escape", None, None)


def test_a_store_name_with_dots_is_not_copied_outside_the_copy(tmp_path):
    import pyarrow.fs as pafs
    # a store whose listing names "../escape" under the dataset: copied as named, it would
    # land beside the node's copy, not in it
    store = tmp_path / "store"
    (store / "fp").mkdir(parents=True)
    (store / "escape").write_text("planted")
    into = tmp_path / "cache" / "fp"
    with pytest.raises(remote.StoreError, match=r"'\.\./escape' .* would be written outside"):
        remote._download(pafs.LocalFileSystem(), str(store / "fp"), ["ok.parquet", "../escape"], into)
    assert not (tmp_path / "cache" / "escape").exists() and not into.exists()
