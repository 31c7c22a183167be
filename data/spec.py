"""What a dataset is made of: its sources and the parameters of every stage.

The fingerprint of a spec addresses the built dataset, so two sweeps that ask for the
same data share one copy, and a changed parameter gets a fresh build.
"""
import hashlib
import json
from dataclasses import asdict, dataclass, field

# Bump when the pipeline's output changes for the same spec, so old builds are not reused.
PIPELINE_VERSION = 1


@dataclass(frozen=True)
class SyntheticSource:
    """Seeded synthetic techno (see data/synthetic.py): the offline default."""
    tracks: int = 40
    seconds: float = 60.0
    seed: int = 0

    def __post_init__(self):
        if self.tracks < 1:
            raise ValueError("tracks must be at least 1")
        if self.seconds <= 0:
            raise ValueError("seconds must be positive")


@dataclass(frozen=True)
class SegmentParams:
    seconds: float = 5.0

    def __post_init__(self):
        if self.seconds <= 0:
            raise ValueError("seconds must be positive")


@dataclass(frozen=True)
class MelParams:
    """Log-mel image of one segment: n_mels rows x frames columns.

    The hop length is derived from the segment length so that a segment gives exactly
    `frames` columns: 5 s at 22,050 Hz with 64 frames is a hop of 1,750 samples.
    """
    sample_rate: int = 22050
    n_mels: int = 64
    frames: int = 64
    n_fft: int = 2048
    fmin: float = 20.0
    top_db: float = 80.0

    def __post_init__(self):
        if self.sample_rate < 8000:
            raise ValueError("sample_rate must be at least 8000")
        if self.n_mels < 8 or self.frames < 8:
            raise ValueError("n_mels and frames must be at least 8")
        if not 0 <= self.fmin < self.sample_rate / 2:
            raise ValueError("fmin must lie between 0 and half the sample rate")
        if self.top_db <= 0:
            raise ValueError("top_db must be positive")


@dataclass(frozen=True)
class DatasetSpec:
    synthetic: SyntheticSource = field(default_factory=SyntheticSource)
    segment: SegmentParams = field(default_factory=SegmentParams)
    mel: MelParams = field(default_factory=MelParams)

    @property
    def fingerprint(self) -> str:
        payload = json.dumps({"spec": asdict(self), "pipeline": PIPELINE_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def hop_length(self) -> int:
        samples = int(round(self.segment.seconds * self.mel.sample_rate))
        return samples // (self.mel.frames - 1)
