"""Mel -> audio on real music: Griffin-Lim at the study's 64 x 64, Griffin-Lim at the
HiFi-GAN preset's 80 x 432, and the pretrained HiFi-GAN (trainables/vocoder.py), side by side
on the same 5 s segments of real tracks.

For each way, per segment: the segment's mel image -> audio -> the image again (the
round-trip error in dB, in the way's own mel), and the resynthesised audio against the
original in one common, finer view, after matching its RMS level (the study's mel keeps no
absolute level): the mean absolute error of HiFi-GAN's log mel (80 bands, 11.6 ms frames) in
dB, the log-spectral distance (LSD, dB) and the spectral convergence
(|| |S| - |S'| ||_F / || S ||_F) of a 2,048-point STFT up to 8 kHz (HiFi-GAN's fmax). FAD of the resynthesised against the original segments is
measured in musicnn's embedding when trainables/metrics/musicnn.py (issue 11's) is in the
tree, and left out, saying so, when it is not. Real-time factor: seconds of compute per
second of audio on this CPU (torch's threads as set), lower is faster; on a GPU too with --gpu.

    .venv/bin/python benchmarks/vocoder.py [FOLDER ...] [--segments 24] [--seed 0] [--gpu]

FOLDER defaults to Debian's game soundtracks (/usr/share/games/{singularity,asc,warzone2100}/music).
"""
import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from data import mel  # noqa: E402
from data.spec import DatasetSpec, MelParams, SegmentParams, audio_files  # noqa: E402
from trainables import vocoder  # noqa: E402

FOLDERS = [f"/usr/share/games/{game}/music" for game in ("singularity", "asc", "warzone2100")]
SR, SECONDS, N_ITER = 22050, 5.0, 32  # N_ITER: the trial artifacts' evaluation.griffin_lim_iters
STUDY = DatasetSpec(mel=MelParams(sample_rate=SR), segment=SegmentParams(seconds=SECONDS))
PRESET = DatasetSpec(mel=MelParams(kind="hifigan", n_mels=80, frames=432, n_fft=1024, fmin=0.0),
                     segment=SegmentParams(seconds=SECONDS))


def segments(folders: list[str], count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`count` 5 s segments at random places (past each track's first 10 s) of random tracks."""
    files = [f for folder in folders for f in audio_files(folder)]
    if not files:
        sys.exit(f"error: no audio files under {', '.join(folders)}.")
    rng = np.random.default_rng(seed)
    clips, names = [], []
    for index in rng.permutation(len(files))[:count] if len(files) >= count else rng.integers(len(files), size=count):
        duration = librosa.get_duration(path=str(files[index]))
        offset = float(rng.uniform(10, max(10.0, duration - SECONDS - 10)))
        audio, _ = librosa.load(files[index], sr=SR, mono=True, offset=offset, duration=SECONDS)
        if len(audio) == int(SECONDS * SR) and np.sqrt(np.mean(audio ** 2)) > 1e-3:
            clips.append(audio)
            names.append(f"{files[index].name}@{offset:.0f}s")
    return np.stack(clips), names


def _db_per_unit(spec: DatasetSpec) -> float:
    """dB per unit of the [-1, 1] image."""
    scale = mel.scaling(spec)
    return (scale["db_max"] - scale["db_min"]) / 2


def _stft_db(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # up to 8 kHz, HiFi-GAN's fmax: the preset's mel holds nothing above it, for either vocoder
    magnitude = np.abs(librosa.stft(audio, n_fft=2048, hop_length=512))[: 2048 * 8000 // SR + 1]
    return magnitude, 10 * np.log10(np.maximum(magnitude ** 2, 1e-10))


def compare(original: np.ndarray, resynthesised: np.ndarray) -> dict:
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    matched = resynthesised * rms(original) / max(rms(resynthesised), 1e-9)
    common = lambda x: mel.hifigan_log_mel(x[None], PRESET)[0, :, :431]  # noqa: E731
    (m1, d1), (m2, d2) = _stft_db(original), _stft_db(matched)
    return {"common_db": float(np.abs(common(original) - common(matched)).mean() * mel.DB_PER_LOG),
            "lsd_db": float(np.mean(np.sqrt(np.mean((d1 - d2) ** 2, axis=0)))),
            "sc": float(np.linalg.norm(m1 - m2) / np.linalg.norm(m1))}


def fad_embedding():
    """issue 11's musicnn embedding, or None with why."""
    try:
        from trainables.metrics.fid import frechet_distance
        from trainables.metrics.musicnn import MusicnnEmbedding
    except ImportError as error:
        return None, f"FAD left out: {error} (trainables/metrics/musicnn.py comes with issue 11)"
    return (MusicnnEmbedding(), frechet_distance), ""


@torch.no_grad()
def fad(embedding, originals: np.ndarray, others: np.ndarray) -> float:
    net, distance = embedding
    real, fake = net.embed_audio(originals, SR).numpy(), net.embed_audio(others, SR).numpy()
    return float(distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", default=FOLDERS)
    parser.add_argument("--segments", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu", action="store_true", help="also time HiFi-GAN on CUDA")
    args = parser.parse_args()
    originals, names = segments(args.folders, args.segments, args.seed)
    print(f"{len(originals)} segments of {SECONDS:g} s from {len(set(n.split('@')[0] for n in names))} tracks "
          f"under {', '.join(args.folders)}; torch threads {torch.get_num_threads()}")
    ways = {"Griffin-Lim, study 64 x 64": (STUDY, "griffin-lim"),
            "Griffin-Lim, preset 80 x 432": (PRESET, "griffin-lim"),
            "HiFi-GAN (universal), 80 x 432": (PRESET, "hifigan")}
    vocoder.load()  # loading is not the vocoder's per-clip cost
    embedding, why = fad_embedding()
    rows = []
    for label, (spec, how) in ways.items():
        images = mel.to_image(originals, spec)
        seconds, outputs, trips, scores = 0.0, [], [], []
        for image, original in zip(images, originals):
            started = time.perf_counter()
            audio = vocoder.render(image, spec, how, n_iter=N_ITER)
            seconds += time.perf_counter() - started
            outputs.append(audio)
            back = mel.to_image(audio[None], spec)[0]
            trips.append(float(np.abs(back - image)[:, : math.ceil(SECONDS * SR / spec.hop_length())].mean())
                         * _db_per_unit(spec))
            scores.append(compare(original, audio))
        row = {"way": label, "rtf_cpu": seconds / (SECONDS * len(originals)), "roundtrip_db": np.mean(trips),
               **{k: np.mean([s[k] for s in scores]) for k in scores[0]}}
        if embedding:
            row["fad"] = fad(embedding, originals, np.stack(outputs))
        rows.append(row)
    if args.gpu and torch.cuda.is_available():
        net = vocoder.load().to("cuda")
        logs = torch.from_numpy(mel.log_mel(mel.to_image(originals, PRESET), PRESET)).cuda()
        with torch.no_grad():
            net(logs[:1])
            torch.cuda.synchronize()
            started = time.perf_counter()
            for clip in logs:
                net(clip[None])
            torch.cuda.synchronize()
        rows[-1]["rtf_gpu"] = (time.perf_counter() - started) / (SECONDS * len(originals))
    columns = ["way", "roundtrip_db", "common_db", "lsd_db", "sc"] + (["fad"] if embedding else []) + \
        ["rtf_cpu"] + (["rtf_gpu"] if "rtf_gpu" in rows[-1] else [])
    heads = {"way": "mel -> audio", "roundtrip_db": "round trip, own mel (dB)", "common_db": "log-mel error vs original (dB)",
             "lsd_db": "LSD (dB)", "sc": "spectral convergence", "fad": "FAD (musicnn)", "rtf_cpu": "RTF CPU",
             "rtf_gpu": "RTF GPU"}
    print("| " + " | ".join(heads[c] for c in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(c, "") if c == "way" else f"{row[c]:.3g}" if c in row else "" for c in columns)
              + " |")
    if why:
        print(why)


if __name__ == "__main__":
    main()
