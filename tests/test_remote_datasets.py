"""Datasets on an object store (storage.datasets): published by the driver, copied once per
node by trials. Against a real S3 API on loopback (moto's server), offline."""
import json
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from data import remote
from data.dataset import load_mels, read_manifest
from tests.helpers import CHEAP_EMBEDDING, S3_ENV, TINY_DATASET, run_module, s3_server, seed_datasets, tiny_sweep, write_spec


@pytest.fixture(scope="module")
def s3():
    """`s3(prefix)`: an s3:// URI under a bucket of a moto server that lives for this module."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in S3_ENV.items():
            patch.setenv(key, value)
        with s3_server("datasets") as query:
            yield lambda prefix: f"s3://datasets/{prefix}?{query}"


@pytest.fixture
def downloads(monkeypatch, tmp_path):
    """Each call of the node-side download, as the list of files it fetched; a node cache in tmp."""
    monkeypatch.setenv("PLATFORM_CACHE", str(tmp_path / "cache"))
    calls = []
    real = remote._download

    def counted(fs, path, files, into):
        calls.append(list(files))
        time.sleep(0.2)  # long enough for a second trial to arrive while the first downloads
        real(fs, path, files, into)
    monkeypatch.setattr(remote, "_download", counted)
    return calls


def _fake_dataset(path, fingerprint="fp0123", tracks=2, rows=3):
    """A built dataset's layout (as data.pipeline writes it), without Ray."""
    rng = np.random.default_rng(0)
    (path / "segments").mkdir(parents=True)
    for t in range(tracks):
        mels = rng.uniform(-1, 1, (rows, 4, 4)).astype(np.float16)
        pq.write_table(pa.table({"track_id": [f"t{t}"] * rows, "segment_index": list(range(rows)),
                                 "mel": pa.FixedShapeTensorArray.from_numpy_ndarray(mels)}),
                       path / "segments" / f"t{t}.parquet")
    pq.write_table(pa.table({"input": ["x"], "stage": ["decode"], "reason": ["empty"]}), path / "failures.parquet")
    (path / "fid_stats").mkdir()
    np.savez(path / "fid_stats" / f"{fingerprint}-emb-n16-seed0.npz", mu=np.zeros(3))
    (path / "fid_stats" / f".{fingerprint}-emb-n16-seed0.lock").write_text("")  # a machine's own
    (path / "manifest.json").write_text(json.dumps({"fingerprint": fingerprint, "counts": {"segments": tracks * rows}}))
    return path


def _objects(uri):
    fs, path = pafs.FileSystem.from_uri(uri)
    return sorted(i.path[len(path) + 1:] for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                  if i.type == pafs.FileType.File)


def test_publish_then_a_node_copies_once(tmp_path, s3, downloads):
    built = _fake_dataset(tmp_path / "runs" / "datasets" / "fp0123")
    uri = remote.join(s3("published"), "fp0123")
    assert uri.startswith("s3://datasets/published/fp0123?endpoint_override=")

    assert not remote.published(uri)
    assert remote.publish(built, uri) == 5
    assert remote.published(uri)
    assert _objects(uri) == ["failures.parquet", "fid_stats/fp0123-emb-n16-seed0.npz", "manifest.json",
                             "segments/t0.parquet", "segments/t1.parquet"]
    assert remote.publish(built, uri) == 0, "this build is there already: nothing uploaded"

    local = remote.local_copy(uri)
    assert local == tmp_path / "cache" / "datasets" / "fp0123"
    assert np.array_equal(load_mels(local), load_mels(built)) and load_mels(local).shape == (6, 4, 4)
    assert read_manifest(local) == read_manifest(built)
    assert (local / "fid_stats" / "fp0123-emb-n16-seed0.npz").exists()
    assert not list(local.glob("fid_stats/.*")) and not list(local.parent.glob(".*"))  # no lock, no temp dir
    assert len(downloads) == 2  # the files, then the manifest last
    assert remote.local_copy(uri) == local and len(downloads) == 2, "a second trial downloads nothing"
    assert remote.local_path(str(built)) == str(built), "a path is read where it is"

    # new FID statistics on the driver (another evaluation setting) reach the node alone
    np.savez(built / "fid_stats" / "fp0123-emb-n32-seed0.npz", mu=np.ones(3))
    assert remote.publish(built, uri) == 1
    remote.local_copy(uri)
    assert downloads[-1] == ["fid_stats/fp0123-emb-n32-seed0.npz"]

    # the same fingerprint built again (prepare --retry-failed): published anew, copied anew
    (built / "segments" / "t2.parquet").write_bytes((built / "segments" / "t1.parquet").read_bytes())
    (built / "manifest.json").write_text(json.dumps({"fingerprint": "fp0123", "counts": {"segments": 9}}))
    assert remote.publish(built, uri) == 7
    remote.local_copy(uri)
    assert load_mels(local).shape == (9, 4, 4) and read_manifest(local)["counts"]["segments"] == 9


def test_trials_starting_together_download_once(tmp_path, s3, downloads):
    uri = remote.join(s3("together"), "fpab")
    remote.publish(_fake_dataset(tmp_path / "built", "fpab"), uri)
    got = []
    trials = [threading.Thread(target=lambda: got.append(remote.local_copy(uri))) for _ in range(3)]
    for t in trials:
        t.start()
    for t in trials:
        t.join()
    assert len(got) == 3 and len(set(got)) == 1
    assert len(downloads) == 2, downloads  # one copy: its files, then its manifest


def test_a_file_uri_works_the_same(tmp_path, downloads):
    uri = (tmp_path / "store" / "fpff").as_uri()
    remote.publish(_fake_dataset(tmp_path / "built", "fpff"), uri)
    assert sorted(p.name for p in (tmp_path / "store" / "fpff").iterdir()) == \
           ["failures.parquet", "fid_stats", "manifest.json", "segments"]
    assert np.array_equal(load_mels(remote.local_copy(uri)), load_mels(tmp_path / "built"))


def test_join_keeps_the_query_last_and_display_hides_keys():
    assert remote.join("s3://b", "fp") == "s3://b/fp"
    assert remote.join("s3://b/p/?endpoint_override=h:1&scheme=http", "fp") == \
           "s3://b/p/fp?endpoint_override=h:1&scheme=http"
    assert remote.join("file:///tmp/x", "fp") == "file:///tmp/x/fp"
    assert remote.display("s3://b/p?access_key=A&secret_key=S&region=r") == "s3://b/p?region=r"
    assert remote.display("s3://KEY:SECRET@b/p?endpoint_override=h:1") == "s3://b/p?endpoint_override=h:1"


def test_secret_settings_are_redacted_wherever_a_spec_is_written():
    from data.spec import redacted
    spec = {"dataset": {"download": {"proxy": "http://u:pw@p:3128", "cookies": "/home/me/c.txt", "retries": 2},
                        "urls": ["https://x.test/a?token=T"]},
            "storage": {"datasets": "s3://K:S@b/p?scheme=http", "root": "runs"}}
    assert redacted(spec) == {"dataset": {"download": {"proxy": "<redacted>", "cookies": "<redacted>", "retries": 2},
                                          "urls": ["https://x.test/a"]},
                              "storage": {"datasets": "s3://b/p?scheme=http", "root": "runs"}}


def test_a_bad_store_is_one_sentence(tmp_path, s3):
    from platform.driver import cluster
    for uri, why in [(s3("x").replace("s3://datasets/", "s3://no-such-bucket/"), "Bucket 'no-such-bucket' not found"),
                     ("s4://bucket/prefix", "Unrecognized filesystem type"),
                     ("s3://datasets/x?endpoint_override=127.0.0.1:1&scheme=http&connect_timeout=1"
                      "&request_timeout=1", "connect")]:
        with pytest.raises(cluster.ClusterError) as raised:
            cluster.check_store_writable(uri)
        message = str(raised.value)
        assert message.startswith("storage.datasets ") and "cannot be written from this machine" in message
        assert why.lower() in message.lower() and "\n" not in message, message
    cluster.check_store_writable(s3("fine"))
    assert _objects(s3("fine")) == [], "the test object is removed"
    with pytest.raises(remote.StoreError, match="no dataset is published at"):
        remote.fetch(s3("nothing/fp"), tmp_path / "d", tmp_path / "lock")


def test_a_node_that_cannot_read_the_store_is_named(s3, monkeypatch):
    from platform.driver import cluster
    nodes = [cluster.Node("a" * 8, "10.0.0.1"), cluster.Node("b" * 8, "10.0.0.2")]
    monkeypatch.setattr(cluster, "_on_each", lambda nodes, fn, *args: {
        n: None if n.address == "10.0.0.1" else "AWS Error ACCESS_DENIED" for n in nodes})
    with pytest.raises(cluster.ClusterError, match=r"storage.datasets s3://datasets/nodes\?.* cannot be read "
                                                   r"from node 10\.0\.0\.2 \(AWS Error ACCESS_DENIED\)"):
        cluster.check_store_readable(s3("nodes"), "storage.datasets", nodes)
    monkeypatch.setattr(cluster, "_on_each", lambda nodes, fn, *args: {n: fn(*args) for n in nodes})
    cluster.check_store_readable(s3("nodes"), "storage.datasets", nodes)  # the real probe, here
    assert _objects(s3("nodes")) == []


@pytest.mark.slow
def test_sweep_refuses_an_unwritable_store_before_ray(tmp_path, s3):
    bad = s3("x").replace("s3://datasets/", "s3://no-such-bucket/")
    spec = write_spec(tmp_path / "bad.yaml", name="bad", dataset=TINY_DATASET, storage={"datasets": bad})
    started = time.perf_counter()
    # -v: Ray's own lines, "Started a local Ray instance" among them, are shown
    result = run_module("platform.sweep", str(spec), "-v", cwd=tmp_path, env=S3_ENV, timeout=900)
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "storage.datasets s3://no-such-bucket/x?" in error[0], result.stderr[-2000:]
    assert "Started a local Ray instance" not in result.stderr + result.stdout
    assert time.perf_counter() - started < 60


@pytest.mark.slow
def test_storage_datasets_must_be_a_uri(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="s", storage={"datasets": "runs/published"})
    result = run_module("platform.sweep", str(spec), "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    assert "storage" in result.stderr and "datasets" in result.stderr and "not a URI" in result.stderr


# no sample grids or audio: the test reads where the data went and what the trials read, not artifacts
TINY = tiny_sweep("tiny_s3", evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "grid_images": 0,
                                         "audio_clips": 0})


@pytest.mark.slow
def test_a_sweep_publishes_its_dataset_and_trials_read_it_from_there(tmp_path, s3, tiny_datasets):
    store = s3("e2e")
    spec = write_spec(tmp_path / "tiny.yaml", **TINY, storage={"datasets": store})
    seed_datasets(tiny_datasets, tmp_path / "runs")  # the local build is reused; the sweep publishes it
    env = {**S3_ENV, "PLATFORM_CACHE": str(tmp_path / "node-cache")}
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fingerprint = next((tmp_path / "runs" / "datasets").iterdir()).name
    assert f"published at s3://datasets/e2e/{fingerprint}?" in result.stdout

    objects = _objects(remote.join(store, fingerprint))
    assert "manifest.json" in objects and "failures.parquet" in objects
    assert [o for o in objects if o.startswith("segments/")] and [o for o in objects if o.startswith("fid_stats/")]
    # the trials read the node's copy, FID statistics included (the driver computed them)
    copy = tmp_path / "node-cache" / "datasets" / fingerprint
    assert read_manifest(copy) == read_manifest(tmp_path / "runs" / "datasets" / fingerprint)
    assert list(copy.glob("fid_stats/*.npz"))
    results = list((tmp_path / "runs" / "tune").glob("tiny_s3-*/*/result.json"))
    assert len(results) == 2
    for path in results:
        reports = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(reports) == 2 and all(r["fid"] >= 0 for r in reports)

    # a machine without the local build (a new head node): prepare downloads it, builds nothing
    import shutil
    shutil.rmtree(tmp_path / "runs")
    again = run_module("platform.prepare", str(spec), cwd=tmp_path, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Dataset {fingerprint}: downloaded from s3://datasets/e2e/{fingerprint}?" in again.stdout
    assert "(reused)" in again.stdout and "already there" in again.stdout and "building" not in again.stdout


# What a sweep with credentials may never write down: an S3 key pair in the store's URI, a
# proxy's password, a cookies file's path and contents (each string unique to this test).
ACCESS_KEY, SECRET_KEY = "AKIAQX7SECRETKEYID42", "s3cr3tValueNobodyMaySee9"
PROXY_PASSWORD = "pr0xyPassw0rdZ81"
COOKIE_VALUE = "SIDcookieValueQ3k8"


def _files_holding(folder, secrets: list[bytes], skip: set) -> list[str]:
    return [f"{path} holds {secret.decode()!r}" for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and path not in skip
            for secret in secrets if secret in path.read_bytes()]


@pytest.mark.slow
def test_a_sweep_with_credentials_records_none_of_them(tmp_path, s3, tiny_datasets):
    # pyarrow takes a key pair in the URI's authority (s3://KEY:SECRET@bucket), not in its query
    store = s3("secret").replace("s3://", f"s3://{ACCESS_KEY}:{SECRET_KEY}@")
    cookies = tmp_path / "my-signed-in-cookies-7d1e.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       f".youtube.com\tTRUE\t/\tTRUE\t2147483647\tSID\t{COOKIE_VALUE}\n")
    dataset = {**TINY_DATASET, "download": {"proxy": f"http://alice:{PROXY_PASSWORD}@127.0.0.1:9",
                                            "cookies": str(cookies)}}
    spec = write_spec(tmp_path / "creds.yaml", **tiny_sweep("creds", dataset=dataset,
                                                            tune={"searcher": "optuna", "num_samples": 2,
                                                                  "max_concurrent": 2, "scheduler": {"name": "fifo"}}),
                      storage={"datasets": store})
    seed_datasets(tiny_datasets, tmp_path / "runs")
    env = {**S3_ENV, "PLATFORM_CACHE": str(tmp_path / "node-cache")}
    result = run_module("platform.sweep", str(spec), "--set", f"storage.datasets={store}", cwd=tmp_path, env=env,
                        timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = run_module("platform.report", "creds", "--out", str(tmp_path / "report"), cwd=tmp_path, timeout=900)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]

    secrets = [s.encode() for s in (ACCESS_KEY, SECRET_KEY, PROXY_PASSWORD, COOKIE_VALUE, cookies.name)]
    printed = (result.stdout + result.stderr + report.stdout + report.stderr).encode()
    assert not [s for s in secrets if s in printed], "a secret on the console"
    # every byte the sweep and the report wrote: the MLflow store and artifacts, Tune's folder and
    # the sweep's record, the datasets, Optuna's study, the node's cache, the report
    assert (tmp_path / "mlflow.db").exists() and list((tmp_path / "runs" / "tune").rglob("platform-sweep.json"))
    leaks = _files_holding(tmp_path, secrets, skip={spec, cookies})
    assert not leaks, leaks
    # and the records say where the data was, without the keys
    assert b"s3://datasets/secret/" in (tmp_path / "mlflow.db").read_bytes()
