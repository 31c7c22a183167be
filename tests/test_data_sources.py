"""Sources, decoding, segmenting, mel round trip and subsets: fast, no Ray, no network."""
from pathlib import Path

import numpy as np
import pytest

from data import dataset, mel, segment, sources, synthetic, tracks
from data.spec import ALLOW_FILE_URLS, DatasetSpec, DownloadParams, SegmentParams, SyntheticSource
from platform.spec import spaces
from platform.spec.typed import SpecError
from tests.helpers import write_spec

FORMATS = ("mp3", "m4a", "aac", "wav", "flac", "ogg")


@pytest.mark.parametrize("ext", FORMATS)
def test_every_format_decodes_to_mono_at_the_mel_rate(tmp_path, ext):
    path = tmp_path / f"track.{ext}"
    synthetic.write_track(path, seed=1, seconds=6.0, sample_rate=44100, channels=2)
    audio = segment.decode(path, 22050)
    assert audio.channels == 1 and audio.frame_rate == 22050 and audio.sample_width == 2
    assert 5.9 <= audio.duration_seconds <= 6.2  # lossy encoders pad a few milliseconds
    reference, _ = synthetic.render_track(1, 6.0, 22050)
    decoded = segment.to_waveform(audio)
    assert abs(np.abs(decoded).max() - np.abs(reference).max()) < 0.1


def test_bad_files_fail_with_one_sentence(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    text = tmp_path / "notes.flac"
    text.write_text("this is not audio\n")
    with pytest.raises(segment.DecodeError, match=r"^the file is empty \(0 bytes\)$"):
        segment.decode(empty, 22050)
    with pytest.raises(segment.DecodeError, match=r"^ffmpeg could not decode it \(.+\)$"):
        segment.decode(text, 22050)


def test_cut_track_skips_intro_outro_and_silent_segments():
    sr = 8000
    loud, _ = synthetic.render_track(2, 30.0, sr)
    loud[10 * sr:20 * sr] = 0.0  # a silent stretch in the middle
    audio = segment.from_waveform(loud, sr)
    params = SegmentParams(seconds=5.0, hop_seconds=2.5, skip_start_seconds=2.0, skip_end_seconds=3.0)
    kept, silent = segment.cut_track(audio, params)
    starts = [start for start, _ in kept]
    # body 2 s .. 27 s, a window every 2.5 s; the two wholly inside 10 .. 20 s are silent
    assert starts == [2.0, 4.5, 7.0, 9.5, 17.0, 19.5, 22.0]
    assert silent == 2
    assert all(len(samples) == 5 * sr for _, samples in kept)
    # the threshold is the config's: a hiss near -50 dBFS is music at -60 and silence at -40
    hiss = segment.from_waveform(np.random.default_rng(0).normal(0, 0.003, 10 * sr).astype(np.float32), sr)
    assert segment.cut_track(hiss, SegmentParams(silence_dbfs=-60.0))[1] == 0
    assert segment.cut_track(hiss, SegmentParams(silence_dbfs=-40.0))[1] == 2


def test_track_shorter_than_a_segment_is_a_failure_with_its_length(tmp_path):
    path = tmp_path / "short.wav"
    synthetic.write_track(path, seed=3, seconds=3.0, sample_rate=22050)
    spec = DatasetSpec(folders=[str(tmp_path)])
    track = sources.resolve(spec)[0][0]
    summary = tracks.process(track, spec, tmp_path)
    assert summary["stage"] == "segment" and summary["segments"] == 0
    assert summary["reason"].startswith("shorter than one segment (3.0 s of audio")
    assert not list(tmp_path.glob("*.parquet"))


def test_spec_rejects_urls_that_are_not_http(tmp_path, monkeypatch):
    file = write_spec(tmp_path / "s.yaml", name="x", dataset={"urls": ["ftp://example.com/a.mp3"]})
    with pytest.raises(SpecError, match=r"s\.yaml: dataset: urls\[0\]: 'ftp://example.com/a.mp3' is not an http or https URL"):
        spaces.load(file)
    with pytest.raises(ValueError, match="not an http or https URL"):
        DatasetSpec(urls=["file:///tmp/a.mp3"])
    with pytest.raises(SpecError, match=r"dataset.download.allow_file_urls: unknown key"):  # not a spec key
        spaces.load(write_spec(tmp_path / "f.yaml", name="x", dataset={"download": {"allow_file_urls": True}}))
    monkeypatch.setenv(ALLOW_FILE_URLS, "1")  # only the tests' switch allows them
    assert DatasetSpec(urls=["file:///tmp/a.mp3"]).urls


def test_synthetic_is_the_default_only_without_other_sources(tmp_path):
    assert DatasetSpec().synthetic == SyntheticSource()
    assert DatasetSpec(folders=[str(tmp_path)]).synthetic is None
    both = DatasetSpec(folders=[str(tmp_path)], synthetic=SyntheticSource(tracks=2))
    assert both.synthetic.tracks == 2


def test_resolve_lists_folders_recursively_and_reports_bad_inputs(tmp_path):
    music = tmp_path / "music"
    (music / "a" / "b").mkdir(parents=True)
    for i, ext in enumerate(FORMATS):
        (music / ("a/b" if i % 2 else "a") / f"t{i}.{ext}").write_bytes(b"x")
    (music / "cover.jpg").write_bytes(b"x")
    urls = tmp_path / "urls.txt"
    urls.write_text("# my playlists\n\nhttps://www.youtube.com/watch?v=dQw4w9WgXcQ  # a comment\n"
                    "ftp://nope/a.mp3\nhttps://youtu.be/dQw4w9WgXcQ\n")
    spec = DatasetSpec(folders=[str(music), str(tmp_path / "missing")], url_files=[str(urls), str(tmp_path / "gone.txt")])
    found, failures = sources.resolve(spec)
    kinds = [t["kind"] for t in found]
    assert kinds.count("file") == len(FORMATS) and kinds.count("url") == 1  # the same video twice: once
    assert found[-1]["track_id"] == "youtube-dQw4w9WgXcQ"
    assert {Path(t["locator"]).suffix[1:] for t in found if t["kind"] == "file"} == set(FORMATS)
    reasons = {(f["input"], f["stage"]): f["reason"] for f in failures}
    assert reasons[(str(tmp_path / "missing"), "resolve")] == "the folder does not exist"
    assert reasons[(f"{urls}:4", "resolve")] == "'ftp://nope/a.mp3' is not an http or https URL"
    assert reasons[(str(tmp_path / "gone.txt"), "resolve")].startswith("the URL file could not be read")


def test_fingerprint_follows_folder_contents(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    spec = DatasetSpec(folders=[str(tmp_path)])
    before = spec.fingerprint
    assert DatasetSpec(folders=[str(tmp_path)]).fingerprint == before
    assert DatasetSpec(folders=[str(tmp_path)], download=DownloadParams(concurrency=9)).fingerprint == before
    (tmp_path / "b.flac").write_bytes(b"x")
    assert spec.fingerprint != before


def test_mel_to_audio_to_mel_round_trip_is_close():
    spec = DatasetSpec()
    wave, _ = synthetic.render_track(1, 5.0, spec.mel.sample_rate)
    image = mel.to_image(wave[None], spec)[0]
    audio = mel.to_audio(image, spec)
    assert audio.shape == (5 * spec.mel.sample_rate,) and audio.dtype == np.float32
    again = mel.to_image(audio[None], spec)[0]
    other = mel.to_image(synthetic.render_track(2, 5.0, spec.mel.sample_rate)[0][None], spec)[0]
    error = np.abs(again - image).mean()
    assert error < 0.1 and error < np.abs(other - image).mean() / 4


def _tiny_dataset(tmp_path: Path) -> Path:
    """A dataset directory written by the per-track step itself, without Ray."""
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=3, seconds=16.0, seed=5))
    parts = tmp_path / "ds" / dataset.SEGMENTS
    parts.mkdir(parents=True)
    for track in sources.resolve(spec)[0]:
        assert tracks.process(track, spec, parts)["segments"] == 3
    return tmp_path / "ds"


def test_subset_is_seeded_stable_and_a_subset(tmp_path):
    path = _tiny_dataset(tmp_path)
    everything = dataset.load_mels(path)
    assert everything.shape == (9, 64, 64) and everything.dtype == np.float16
    a = dataset.load_mels(path, max_segments=4, seed=1)
    assert a.shape == (4, 64, 64)
    assert np.array_equal(a, dataset.load_mels(path, max_segments=4, seed=1))
    rows = dataset.subset_indices(9, 4, seed=1)
    assert np.array_equal(a, everything[rows]) and list(rows) == sorted(set(rows))
    assert not np.array_equal(rows, dataset.subset_indices(9, 4, seed=2))
    assert np.array_equal(dataset.load_mels(path, max_segments=100), everything)
    # the subset of a bigger dataset does not depend on anything but (size, number, seed)
    assert np.array_equal(dataset.subset_indices(260_000, 60_000, 0), dataset.subset_indices(260_000, 60_000, 0))
