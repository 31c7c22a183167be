"""The base of every embedding: a module from mel images (n, 1, mels, frames) in [-1, 1]
to feature rows, with a name and the settings that key the real-statistics cache."""
import hashlib
import json

from torch import nn


class Embedding(nn.Module):
    name: str
    dim: int
    standardised: bool  # metrics in units of the real features' spread

    def settings(self) -> dict:
        """What fixes the features: part of the real-statistics cache key."""
        return {}

    @property
    def cache_key(self) -> str:
        digest = hashlib.md5(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"
