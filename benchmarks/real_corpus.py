"""A folder of real electronic music, made offline from Debian's free game-music packages.

    .venv/bin/python benchmarks/real_corpus.py OUT [--minutes 40]

For the benchmarks (benchmarks/metric_agreement.py) and for checks on real music; the
fast test suite never needs it. Sources, most electronic and beat-driven first:
- `nexuiz-music`: Nexuiz's soundtrack (electronic, industrial, breakbeat), Ogg files
  inside the `music.pk3` zip archive, extracted as they are;
- `asc-music`: Advanced Strategic Command's electronic rock (mp3);
- `warzone2100-music`: the community soundtracks (opus), electronic and orchestral.
Singularity's ambient pieces and OpenArena (no music in its .pk3 files) are left out;
LMMS's demo projects are never used (reserved for independent checks).

Files are added in that order until `--minutes` are reached. OUT gets the audio files and
`manifest.csv` (name, package, licence, seconds): the licence is the first licence named
in `/usr/share/doc/PKG/copyright`. A missing package is installed with apt-get when this
is a root shell, otherwise the script says what to install and exits 2.
"""
import argparse
import csv
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import soundfile

PACKAGES = ("nexuiz-music", "asc-music", "warzone2100-music")
NEXUIZ_PK3 = Path("/usr/share/games/nexuiz/data/music.pk3")
ASC = Path("/usr/share/games/asc/music")
WARZONE = Path("/usr/share/games/warzone2100/music/albums")
LICENCES = ("GPL-3", "GPL-2", "GPL", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC-BY-SA", "CC-BY", "LGPL", "BSD", "MIT")


def licence(package: str) -> str:
    path = Path("/usr/share/doc") / package / "copyright"
    text = path.read_text(errors="replace") if path.exists() else ""
    if not text and path.with_suffix(".gz").exists():
        text = gzip.decompress(path.with_suffix(".gz").read_bytes()).decode(errors="replace")
    text = text.replace("General Public License", "GPL").replace("version 3", "-3").replace("version 2", "-2")
    for name in LICENCES:
        found = re.search(re.escape(name).replace("\\-", r"\s*-?\s*"), text)
        if found:
            return name
    return "see /usr/share/doc/%s/copyright" % package


def _missing() -> list[str]:
    where = {"nexuiz-music": NEXUIZ_PK3, "asc-music": ASC, "warzone2100-music": WARZONE}
    return [p for p in PACKAGES if not where[p].exists()]


def ensure_packages() -> None:
    missing = _missing()
    if not missing:
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, check=True, stdout=subprocess.DEVNULL)
        return
    print(f"error: the Debian packages {', '.join(missing)} are not installed: run "
          f"`sudo apt-get install {' '.join(missing)}` and try again.", file=sys.stderr)
    sys.exit(2)


def candidates():
    """(name, package, bytes) in order of preference."""
    if NEXUIZ_PK3.exists():
        with zipfile.ZipFile(NEXUIZ_PK3) as pk3:
            for info in sorted(pk3.infolist(), key=lambda i: i.filename):
                if info.filename.startswith("sound/cdtracks/") and info.filename.endswith(".ogg") \
                        and info.file_size > 1_000_000:  # leave out jingles
                    yield f"nexuiz-{Path(info.filename).name}", "nexuiz-music", pk3.read(info)
    for path in sorted(ASC.glob("*.mp3")):
        yield f"asc-{path.name}", "asc-music", path.read_bytes()
    for path in sorted(WARZONE.glob("*/*.opus")):
        yield f"warzone2100-{path.parent.name}-{path.name}", "warzone2100-music", path.read_bytes()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=40.0, help="stop once this much music is copied")
    args = parser.parse_args(argv)
    ensure_packages()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, total = [], 0.0
    for name, package, data in candidates():
        if total >= args.minutes * 60:
            break
        seconds = soundfile.info(io.BytesIO(data)).duration
        (args.out / name).write_bytes(data)
        rows.append({"name": name, "package": package, "licence": licence(package), "seconds": round(seconds, 1)})
        total += seconds
    with open(args.out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["name", "package", "licence", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} files, {total / 60:.1f} minutes, in {args.out} (manifest.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
