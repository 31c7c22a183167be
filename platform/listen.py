"""Turn mel images back into sound: python -m platform.listen SOURCE --out DIR

SOURCE is a built dataset directory (pick rows with --rows, numbered as `load_mels` orders
them) or a saved mel `.npy` of shape (n_mels, frames) or (N, [1,] n_mels, frames), such as
a generator's output; a `.npy` needs --dataset (a dataset directory) for its mel
parameters. Each image becomes a WAV file by --vocoder: Griffin-Lim (data/mel.py), or
HiFi-GAN (trainables/vocoder.py) for a dataset whose mel is kind hifigan, its default there.

python -m platform.listen --serve EXPERIMENT runs the blind listening test instead
(platform/blind_test/app.py).
"""
import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from platform.driver import command
from platform.spec.typed import SpecError


def _npy(path: Path, spec) -> tuple[np.ndarray, list[str]]:
    try:
        images = np.load(path)  # allow_pickle=False: an object array is refused, never unpickled
    except (ValueError, OSError, EOFError) as error:
        raise SpecError(f"{path}: not a saved array of mels ({str(error).splitlines()[0][:200]}).") from None
    if images.dtype.kind not in "fiu":
        raise SpecError(f"{path}: expected mels as numbers, got an array of {images.dtype}.")
    shape = (spec.mel.n_mels, spec.mel.frames)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != shape:
        raise SpecError(f"{path}: expected mels of shape {shape} (or a batch of them), got {images.shape}.")
    return images, [f"{path.stem}-{i:04d}" for i in range(len(images))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.listen", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="a dataset directory (runs/datasets/<fingerprint>) or a mel .npy file")
    parser.add_argument("--rows", type=int, nargs="+", default=[0], help="dataset rows to render (default: 0)")
    parser.add_argument("--dataset", help="for a .npy: the dataset whose mel parameters it uses")
    parser.add_argument("--out", default="wavs", help="folder for the WAV files (default: wavs)")
    parser.add_argument("--n-iter", type=int, default=64, help="Griffin-Lim iterations (default: 64)")
    parser.add_argument("--vocoder", choices=("griffin-lim", "hifigan"), default=None,
                        help="default: hifigan for a kind-hifigan dataset, else griffin-lim")
    test = parser.add_argument_group("the listening test (--serve)")
    test.add_argument("--serve", metavar="EXPERIMENT",
                      help="serve the blind listening test of this experiment's latest sweep instead")
    test.add_argument("--parent", help="the sweep's parent run id (default: the experiment's latest sweep)")
    test.add_argument("--runs", nargs="+", metavar="RUN_ID", help="rate these trial runs instead of a sweep's")
    test.add_argument("--clips-per-trial", type=int, default=4, help="samples of each trial (default: 4)")
    test.add_argument("--real-clips", type=int, default=8, help="real segments, the anchor (default: 8)")
    test.add_argument("--max-raters", type=int, default=200,
                      help="rater tokens the page issues, one per browser; ratings need one (default: 200)")
    test.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    test.add_argument("--port", type=int, default=8777,
                      help="port (default: 8777; keep it: a rater's id lives in the browser per address and port)")
    test.add_argument("--storage-root", default=None,
                      help="where clips and ratings are kept (default: $PLATFORM_STORAGE_ROOT, else ./runs)")
    test.add_argument("--tracking-uri", default=None,
                      help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    args = parser.parse_args(argv)
    if (args.source is None) == (args.serve is None):
        parser.error("give a SOURCE to render, or --serve EXPERIMENT (one of them)")
    command.setup_logging(logging.INFO)
    if args.serve:
        from platform.blind_test.app import main as serve
        return serve(args)

    import soundfile
    from data.dataset import DatasetError, read_rows, read_spec
    source = Path(args.source)
    try:
        if source.is_dir():
            spec = read_spec(source)
            images, names = read_rows(source, args.rows)
        elif source.suffix == ".npy" and source.is_file():
            if not args.dataset:
                raise SpecError(f"{source}: a .npy needs --dataset DIR, the dataset whose mel parameters it uses.")
            spec = read_spec(args.dataset)
            images, names = _npy(source, spec)
        else:
            raise SpecError(f"{source}: expected a dataset directory or a .npy file, and found neither.")
    except FileNotFoundError as error:
        return command.error(f"{error.filename}: no such file (is that a built dataset?).")
    except (SpecError, DatasetError) as error:
        return command.error(error)

    from trainables.config import hifigan_mismatch
    from trainables.vocoder import render
    vocoder = args.vocoder or ("hifigan" if spec.mel.kind == "hifigan" else "griffin-lim")
    if vocoder == "hifigan" and hifigan_mismatch(spec):
        return command.error(f"--vocoder hifigan: {hifigan_mismatch(spec)}.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names):
        audio = render(image, spec, vocoder, n_iter=args.n_iter)
        path = out / f"{name}.wav"
        soundfile.write(path, audio, spec.mel.sample_rate, subtype="PCM_16")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
