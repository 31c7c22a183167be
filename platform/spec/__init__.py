"""Search-space files: YAML read with bounds (spaces), typed and checked (typed), changed by
`--set` (overrides), and turned into Ray Tune's param space, searcher and scheduler
(tune_space, optuna_search). Nothing here imports torch or Ray at import time."""
