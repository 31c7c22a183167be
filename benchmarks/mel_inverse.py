"""Mel -> audio: the filter bank's pseudo-inverse (data/mel.py) against librosa's
non-negative least squares (librosa.feature.inverse.mel_to_audio), side by side on the
same synthetic segments: seconds per clip, and how close each sound's mel comes back
(mean absolute error on the [-1, 1] image; a different track's image is the scale).

    .venv/bin/python benchmarks/mel_inverse.py [--clips 8] [--n-iter 32]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import librosa  # noqa: E402
import numpy as np  # noqa: E402

from data import mel, synthetic  # noqa: E402
from data.spec import DatasetSpec  # noqa: E402


def nnls_audio(image: np.ndarray, spec: DatasetSpec, n_iter: int) -> np.ndarray:
    top_db = spec.mel.top_db
    power = librosa.db_to_power((np.clip(image, -1, 1) + 1.0) * top_db / 2.0 - top_db)
    kwargs = mel._mel_kwargs(spec)
    del kwargs["n_mels"]
    length = int(round(spec.segment.seconds * spec.mel.sample_rate))
    return librosa.feature.inverse.mel_to_audio(power, n_iter=n_iter, length=length, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--n-iter", type=int, default=32)
    args = parser.parse_args()
    spec = DatasetSpec()
    sr = spec.mel.sample_rate
    images = [mel.to_image(synthetic.render_track(seed, 5.0, sr)[0][None], spec)[0] for seed in range(1, args.clips + 1)]
    unrelated = float(np.abs(images[0] - images[1]).mean())
    ways = {"pinv (data/mel.py)": lambda im: mel.to_audio(im, spec, args.n_iter),
            "nnls (librosa)": lambda im: nnls_audio(im, spec, args.n_iter)}
    for way in ways.values():
        way(images[0])  # warm caches (numba, filter banks)
    timings = {}
    errors = {name: [] for name in ways}
    for image in images:  # interleaved, so load on a shared machine hits both alike
        for name, way in ways.items():
            started = time.perf_counter()
            audio = way(image)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            errors[name].append(float(np.abs(mel.to_image(audio[None], spec)[0] - image).mean()))
    for name in ways:
        print(f"{name:20s} {timings[name] / len(images):.3f} s/clip, round-trip error {np.mean(errors[name]):.4f}")
    pinv, nnls = ways
    print(f"speed ratio nnls/pinv: {timings[nnls] / timings[pinv]:.2f}x; "
          f"error of an unrelated track's image: {unrelated:.3f}")


if __name__ == "__main__":
    main()
