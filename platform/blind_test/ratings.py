"""ratings.sqlite, one row per (clip, rater), and what it says: each trial's mean opinion
score with a 95 % interval, logged to its MLflow run, and the table of all of them
(listening/mos.csv) on the sweep's parent run."""
import csv
import io
import math
import secrets
import sqlite3
import time
from pathlib import Path

import numpy as np

from platform.blind_test.clips import REAL

MOS_TABLE = "listening/mos.csv"


class Ratings:
    """ratings.sqlite: one row per (clip, rater), so a rater's votes are bounded by the clips (a
    rater who rates a clip again replaces it), and the rater tokens the page has issued."""

    def __init__(self, path: Path):
        self.path = path
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS ratings (clip TEXT NOT NULL, run_id TEXT NOT NULL, "
                       "rater TEXT NOT NULL, score INTEGER NOT NULL, techno INTEGER NOT NULL, time REAL NOT NULL, "
                       "PRIMARY KEY (clip, rater))")
            db.execute("CREATE TABLE IF NOT EXISTS raters (token TEXT PRIMARY KEY, issued REAL NOT NULL)")

    def issue(self, limit: int) -> str | None:
        """A new rater token, or None when `limit` tokens are issued already."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # count and insert as one: concurrent requests cannot pass the limit
            if db.execute("SELECT COUNT(*) FROM raters").fetchone()[0] >= limit:
                return None
            token = secrets.token_urlsafe(18)
            db.execute("INSERT INTO raters VALUES (?, ?)", (token, time.time()))
            return token

    def issued(self, token: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM raters WHERE token = ?", (token,)).fetchone() is not None

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def add(self, clip: str, run_id: str, rater: str, score: int, techno: bool) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                       (clip, run_id, rater, score, int(techno), time.time()))

    def rated_by(self, rater: str) -> set[str]:
        with self._db() as db:
            return {row[0] for row in db.execute("SELECT clip FROM ratings WHERE rater = ?", (rater,))}

    def of_run(self, run_id: str) -> list[tuple[int, int]]:
        with self._db() as db:
            return list(db.execute("SELECT score, techno FROM ratings WHERE run_id = ?", (run_id,)))

    def run_ids(self) -> list[str]:
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT DISTINCT run_id FROM ratings ORDER BY run_id")]


def summary(rows: list[tuple[int, int]]) -> dict:
    """Mean opinion score with a 95 % Student's t interval (none below two ratings)."""
    scores = np.array([score for score, _ in rows], dtype=float)
    out = {"mos": float(scores.mean()), "mos/count": float(len(scores)),
           "techno/share": float(np.mean([techno for _, techno in rows]))}
    if len(scores) >= 2:
        from scipy import stats
        half = stats.t.ppf(0.975, len(scores) - 1) * scores.std(ddof=1) / math.sqrt(len(scores))
        out["mos/ci95_low"], out["mos/ci95_high"] = out["mos"] - half, out["mos"] + half
    return out


def log_scores(client, parent_run_id: str | None, ratings: Ratings, run_id: str, labels: dict[str, str]) -> None:
    """The rated run's MOS to its MLflow run (real clips': to the parent, as mos/real), and
    the table of all of them to the parent run."""
    rows = ratings.of_run(run_id)
    metrics = summary(rows)
    step = len(rows)
    if run_id != REAL:
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, step=step)
    elif parent_run_id:
        for key, value in metrics.items():
            # mos -> mos/real, mos/count -> mos/real/count, techno/share -> techno/share/real
            name = key.replace("mos", "mos/real", 1) if key.startswith("mos") else f"{key}/real"
            client.log_metric(parent_run_id, name, value, step=step)
    if parent_run_id:
        table = io.StringIO()
        columns = ["run_id", "trial", "mos", "mos/ci95_low", "mos/ci95_high", "mos/count", "techno/share"]
        writer = csv.DictWriter(table, fieldnames=columns, restval="")
        writer.writeheader()
        for rated in ratings.run_ids():
            writer.writerow({"run_id": rated, "trial": labels.get(rated, rated), **summary(ratings.of_run(rated))})
        client.log_text(parent_run_id, table.getvalue(), MOS_TABLE)
