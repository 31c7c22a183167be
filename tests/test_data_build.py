"""The Ray Data build end to end: mixed sources, every bad input, file:// downloads through
yt-dlp, resuming a stopped build, and the prepare and listen commands. Offline: the
unreachable URLs point at a closed local port (directly or as the proxy)."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile

from data import pipeline, synthetic
from data.dataset import load_mels, read_failures, read_manifest
from data.spec import ALLOW_FILE_URLS, DatasetSpec, DownloadParams, SegmentParams, SyntheticSource
from platform import listen, prepare
from tests.helpers import ROOT, write_spec

pytestmark = pytest.mark.slow
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def _music_folder(path):
    """Every supported format with 11 s of techno (2 segments each) and one bad file of each kind."""
    (path / "nested").mkdir(parents=True)
    for i, ext in enumerate(("mp3", "m4a", "aac", "wav", "flac", "ogg")):
        synthetic.write_track(path / ("nested" if i % 2 else ".") / f"track{i}.{ext}", seed=i, seconds=11.0,
                              channels=2)
    (path / "empty.mp3").write_bytes(b"")
    (path / "readme.ogg").write_text("liner notes, not audio\n")
    synthetic.write_track(path / "short.flac", seed=9, seconds=3.0)
    silent = path / "silence.wav"
    soundfile.write(silent, np.zeros(12 * 8000, dtype=np.float32), 8000)
    synthetic.write_track(path / "unnamed.wav", seed=8, seconds=11.0)
    (path / "unnamed.wav").rename(path / "unnamed")  # valid audio, but no extension says so
    return path


def test_build_mixed_sources_skips_every_bad_input(ray_local, tmp_path, capsys, monkeypatch):
    music = _music_folder(tmp_path / "music")
    remote = tmp_path / "remote"
    remote.mkdir()
    synthetic.write_track(remote / "video.m4a", seed=20, seconds=10.5)
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# downloads, through yt-dlp\n{(remote / 'video.m4a').as_uri()}\n"
                    f"{(remote / 'private.m4a').as_uri()}\n{CLOSED_PORT}/stream.mp3\n")
    monkeypatch.setenv(ALLOW_FILE_URLS, "1")  # read where the spec is made: its DownloadParams carries it
    spec = DatasetSpec(
        folders=[str(music), str(tmp_path / "no-such-folder")], url_files=[str(urls)],
        urls=["https://www.youtube.com/playlist?list=PLnetworkdown"],
        synthetic=SyntheticSource(tracks=1, seconds=5.0, seed=3),
        segment=SegmentParams(silence_dbfs=-55.0),
        download=DownloadParams(socket_timeout=2, retries=0, proxy=CLOSED_PORT))
    built = pipeline.build(spec, tmp_path / "root")

    assert built.segments == 6 * 2 + 2 + 1 and built.tracks == 8 and not built.reused
    assert built.unreachable == 2  # the playlist (listing) and the closed port (download)
    failures = {f["input"]: (f["stage"], f["reason"]) for f in read_failures(built.path)}
    assert failures[str(music / "empty.mp3")] == ("decode", "the file is empty (0 bytes)")
    assert failures[str(music / "readme.ogg")][0] == "decode"
    assert failures[str(music / "readme.ogg")][1].startswith("ffmpeg could not decode it")
    assert failures[str(music / "short.flac")][0] == "segment"
    assert failures[str(music / "short.flac")][1].startswith("shorter than one segment (3.0 s")
    assert failures[str(music / "silence.wav")] == ("segment", "all 2 segments are silent (below -55 dBFS)")
    assert failures[str(tmp_path / "no-such-folder")] == ("resolve", "the folder does not exist")
    assert failures[(remote / "private.m4a").as_uri()][0] == "fetch"
    assert "No such file" in failures[(remote / "private.m4a").as_uri()][1]
    assert failures["https://www.youtube.com/playlist?list=PLnetworkdown"] == (
        "resolve", "could not reach www.youtube.com (no network, or the host is down)")
    assert failures[f"{CLOSED_PORT}/stream.mp3"] == ("fetch", "could not reach 127.0.0.1 (no network, or the host is down)")
    assert failures[str(music / "unnamed")][0] == "ignored"
    assert failures[str(music / "unnamed")][1].startswith("not read: its name has no extension")
    assert len(failures) == 9

    table = pq.read_table(built.path / "segments")
    assert set(table.column("source").to_pylist()) >= {"synthetic", (remote / "video.m4a").as_uri(),
                                                       str(music / "nested" / "track1.m4a")}
    assert read_manifest(built.path)["counts"] == {"tracks": 8, "segments": 15, "failures": 9}
    images = load_mels(built.path)
    assert images.shape == (15, 64, 64) and np.isfinite(images).all()

    prepare.report(built, show=20)
    out = capsys.readouterr().out
    assert f"Dataset {built.fingerprint} (built): 15 segments from 8 tracks" in out
    assert "Skipped 9 input(s):" in out and "the folder does not exist" in out
    assert f"{music / 'unnamed'}  [ignored] not read" in out
    assert "The URL sources could not be reached (2 input(s): no network?)" in out

    # downloads are cached by video id: a rebuild from scratch does not fetch again
    cache = tmp_path / "root" / "downloads"
    (cached,) = cache.iterdir()
    stamp = cached.stat().st_mtime_ns
    os.rename(built.path, tmp_path / "old")
    again = pipeline.build(spec, tmp_path / "root")
    assert again.segments == 15 and list(cache.iterdir()) == [cached] and cached.stat().st_mtime_ns == stamp

    # retrying the failures redoes only the tracks that have no segments yet
    synthetic.write_track(remote / "private.m4a", seed=21, seconds=10.0)
    retried = pipeline.build(spec, tmp_path / "root", retry_failed=True)
    assert retried.processed_tracks == 6 and retried.resumed_tracks == 8  # 4 bad files, 2 downloads
    assert retried.segments == 17 and retried.failures == 8 and retried.path == again.path  # 7 + the unnamed file
    assert (again.path / "manifest.json").exists()
    assert sorted(p.name for p in (tmp_path / "root" / "datasets").iterdir()) == [spec.fingerprint]

    # the listen command turns rows into 5 s WAV files
    assert listen.main([str(again.path), "--rows", "0", "14", "--out", str(tmp_path / "wavs"), "--n-iter", "4"]) == 0
    wavs = sorted((tmp_path / "wavs").iterdir())
    assert len(wavs) == 2 and soundfile.info(wavs[0]).frames == 5 * 22050
    np.save(tmp_path / "fake.npy", images[:3].astype(np.float32))  # as a generator would save them
    assert listen.main([str(tmp_path / "fake.npy"), "--dataset", str(again.path), "--out",
                        str(tmp_path / "gen"), "--n-iter", "4"]) == 0
    assert len(list((tmp_path / "gen").glob("fake-*.wav"))) == 3
    # HiFi-GAN cannot voice the study's mel: one sentence, nothing written
    assert listen.main([str(again.path), "--vocoder", "hifigan", "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()


def test_only_unreachable_urls_fail_with_one_sentence(ray_local, tmp_path):
    spec = DatasetSpec(urls=[f"{CLOSED_PORT}/a.mp3"], download=DownloadParams(socket_timeout=2, retries=0))
    with pytest.raises(pipeline.BuildError, match=r"^The dataset \w+ has no segments: the URL sources could "
                                                  r"not be reached and there is no other source\.$"):
        pipeline.build(spec, tmp_path)
    assert not (tmp_path / "datasets" / spec.fingerprint).exists()


def test_a_stopped_build_resumes_without_repeating_work(ray_local, tmp_path):
    space = write_spec(tmp_path / "space.yaml", name="resume",
                       dataset={"synthetic": {"tracks": 24, "seconds": 30.0, "seed": 11}})
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=24, seconds=30.0, seed=11))
    work = tmp_path / "runs" / "datasets" / f".{spec.fingerprint}.building" / "segments"
    command = [sys.executable, "-m", "platform.prepare", str(space), "--root", str(tmp_path / "runs")]
    log = tmp_path / "prepare.log"  # what the build said, shown if it ended before it was stopped
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(list(work.glob("*.parquet"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        ended_by_itself = proc.poll()
        with contextlib.suppress(ProcessLookupError):  # the group may be gone if the build ended
            os.killpg(proc.pid, signal.SIGKILL)  # a hard stop: no chance to clean up
    finally:
        proc.wait(timeout=300)
    done = {p.name: p.stat().st_mtime_ns for p in work.glob("*.parquet")}
    assert ended_by_itself is None, f"the build ended (exit {ended_by_itself}) before it was stopped: " \
        + log.read_text()[-3000:]
    assert 3 <= len(done) < 24, f"the build was to be stopped part way; it had written {len(done)} part(s)"
    assert not (tmp_path / "runs" / "datasets" / spec.fingerprint).exists()

    built = pipeline.build(spec, tmp_path / "runs")
    assert built.resumed_tracks == len(done) and built.processed_tracks == 24 - len(done)
    assert built.segments == 24 * 6
    parts = {p.name: p.stat().st_mtime_ns for p in (built.path / "segments").glob("*.parquet")}
    assert len(parts) == 24 and all(parts[name] == stamp for name, stamp in done.items())
    manifest = read_manifest(built.path)
    assert manifest["build"]["resumed_tracks"] == len(done)
    assert sorted(p.name for p in (tmp_path / "runs" / "datasets").iterdir()) == [spec.fingerprint]


def test_a_track_written_where_the_driver_cannot_see_it_fails_the_build(tmp_path, monkeypatch):
    """A task on a node that does not mount storage.root writes its part there, out of the
    driver's sight: the build must refuse to finish rather than publish a partial dataset."""
    from data import tracks
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=2, seconds=11.0, seed=3))

    def elsewhere(pending, spec, parts, cache_dir, here_only=False):
        return [tracks._summary(t, segments=2, began=0.0, ended=0.0) for t in pending], ""
    monkeypatch.setattr(pipeline, "_run", elsewhere)
    with pytest.raises(pipeline.BuildError, match=r"^2 track\(s\) were processed but their parts are not under .*"
                                                  r"make storage.root a directory every node mounts"):
        pipeline.build(spec, tmp_path / "root")
    assert not (tmp_path / "root" / "datasets" / spec.fingerprint).exists()
