"""FER+ votes: the majority label, and what it leaves out."""

from __future__ import annotations

import numpy as np

from deepfer.data.dataset import FaceDataset
from deepfer.data.ferplus import ferplus_majority, load_ferplus_votes
from deepfer.edge.labels import LABELS

FERPLUS_HEADER = "file,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def test_ferplus_majority_relabels_and_counts_what_it_leaves_out(tmp_path):
    votes = tmp_path / "ferplus_test.csv"
    votes.write_text(
        FERPLUS_HEADER
        + "angry/a.png,1,8,0,0,1,0,0,0,0,0\n"  # FER2013 says angry, FER+ says happy
        + "angry/b.png,0,0,0,0,9,0,0,1,0,0\n"  # both say angry
        + "fear/c.png,0,0,4,0,0,0,4,0,2,0\n"  # surprise and fear tie
        + "fear/d.png,0,0,1,0,0,0,2,7,0,0\n"  # contempt: no DeepFER class
        + "sad/e.png,0,0,0,0,0,0,0,0,0,10\n"  # not a face
        + "sad/f.png,3,0,0,1,0,0,0,0,6,0\n"  # unknown
    )
    names = ["angry/a.png", "angry/b.png", "fear/c.png", "fear/d.png", "sad/e.png", "sad/f.png"]
    names.append("sad/not-listed.png")
    y = np.array([LABELS.index(n.split("/")[0]) for n in names])
    ds = FaceDataset(np.arange(7, dtype=np.uint8)[:, None, None, None], y, "test", names)
    kept, info = ferplus_majority(ds, load_ferplus_votes(votes))
    assert kept.files == ["angry/a.png", "angry/b.png"]
    assert [LABELS[i] for i in kept.y] == ["happy", "angry"]
    assert kept.x[:, 0, 0, 0].tolist() == [0, 1]  # the faces travel with their labels
    assert info == {
        "faces": 7,
        "kept": 2,
        "left_out": {"contempt": 1, "unknown": 1, "NF": 1, "tie": 1, "not in the votes file": 1},
        "label_changed": 1,
    }


def test_ferplus_distributions_are_vote_shares_over_the_seven_classes(tmp_path):
    from deepfer.data.ferplus import ferplus_distributions

    votes = tmp_path / "ferplus_train.csv"
    votes.write_text(
        FERPLUS_HEADER
        + "angry/a.png,1,6,0,0,3,0,0,0,0,0\n"  # neutral 1, happy 6, angry 3
        + "fear/b.png,0,0,2,0,0,0,2,4,2,0\n"  # contempt and unknown votes dropped
        + "sad/c.png,0,0,0,0,0,0,0,0,0,10\n"  # not a face: no opinion
    )
    names = ["angry/a.png", "fear/b.png", "sad/c.png", "sad/not-listed.png"]
    y = np.array([LABELS.index(n.split("/")[0]) for n in names])
    ds = FaceDataset(np.zeros((4, 1, 1, 1), np.uint8), y, "train", names)
    shares = ferplus_distributions(ds, load_ferplus_votes(votes))
    assert shares.shape == (4, 7) and shares.dtype == np.float32
    expect = {"neutral": 0.1, "happy": 0.6, "angry": 0.3}
    assert np.allclose(shares[0], [expect.get(label, 0.0) for label in LABELS])
    assert np.allclose(shares[1], [0.5 if label in ("surprise", "fear") else 0 for label in LABELS])
    assert not shares[2].any() and not shares[3].any()


def test_class_folders_spelt_otherwise_find_their_votes(tmp_path):
    """A dataset whose class folders are `Happy/`, `anger/`, `scared/` (read as happy, angry,
    fear) finds the votes the file lists under happy/, angry/, fear/."""
    votes = tmp_path / "ferplus_test.csv"
    votes.write_text(
        FERPLUS_HEADER
        + "happy/a.png,0,9,0,0,1,0,0,0,0,0\n"
        + "angry/b.png,0,0,0,0,9,0,0,1,0,0\n"
        + "fear/c.png,0,0,1,0,0,0,9,0,0,0\n"
    )
    names = ["Happy/a.png", "anger/b.png", "scared/c.png"]
    y = np.array([LABELS.index(n) for n in ("happy", "angry", "fear")])
    ds = FaceDataset(np.zeros((3, 1, 1, 1), np.uint8), y, "test", names)
    kept, info = ferplus_majority(ds, load_ferplus_votes(votes))
    assert info["kept"] == 3 and [LABELS[i] for i in kept.y] == ["happy", "angry", "fear"]
    votes.write_bytes(b"\xef\xbb\xbf" + votes.read_bytes())  # saved by Excel: the same votes
    assert ferplus_majority(ds, load_ferplus_votes(votes))[1]["kept"] == 3
