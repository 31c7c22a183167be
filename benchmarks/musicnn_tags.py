"""Does the torch port of musicnn tag music as the original does? Its top tags per file.

    .venv/bin/python benchmarks/musicnn_tags.py FOLDER [--seconds 30] [--offset 60]

TensorFlow is not installed here, so the port (trainables/metrics/musicnn.py) is checked
against what the MagnaTagATune tagger is known to do: electronic, beat-driven music gets
techno / electronic / beat, rock gets rock / guitar / drums, noise gets loud / fast.
Each file's `--seconds` from `--offset` are cut into musicnn's 3 s patches and averaged.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import librosa  # noqa: E402
import numpy as np  # noqa: E402

from data.spec import audio_files  # noqa: E402
from trainables.metrics import musicnn  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--offset", type=float, default=60.0)
    args = parser.parse_args(argv)
    embedding = musicnn.MusicnnEmbedding()
    patch = 3 * musicnn.SAMPLE_RATE
    for path in audio_files(args.folder):
        audio, _ = librosa.load(path, sr=musicnn.SAMPLE_RATE, offset=args.offset, duration=args.seconds)
        if len(audio) < patch:
            continue
        tags = embedding.tags(audio[: len(audio) // patch * patch].reshape(-1, patch), musicnn.SAMPLE_RATE).mean(0)
        top = np.argsort(-tags)[:5]
        print(f"{path.name:40s} " + ", ".join(f"{musicnn.MTT_TAGS[i]} {tags[i]:.2f}" for i in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
