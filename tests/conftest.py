"""Shared fixtures: small data the tests make themselves, the real data when DEEPFER_DATA is set,
and one tiny trained model (Keras and TFLite with sidecar) per test session.

Tests are grouped by folder (tests/edge, tests/train, tests/convert, tests/e2e, ...); each
test gets its folder's marker (``pytest -m edge``). tests/edge runs on an edge-only install:
its ``tiny_tflite_model`` is the committed tests/assets model (tests/edge/conftest.py), and the
Keras fixtures here skip when Keras is not installed."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

#: One thread per library pool in every test process and the commands it starts (set here,
#: before numpy or OpenCV is first imported; a value already set wins). The suite runs one
#: worker more than there are cores (below), and numpy's OpenBLAS and OpenCV each started a
#: pool of a thread per core in every process, spinning while they wait: run_cli and
#: detect_cli took 91 s of CPU with the pools, 71 s without, in the same wall time alone; under
#: xdist the spinning takes the cores the workers need. TensorFlow's and TFLite's threads are
#: set by the code tested.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
    os.environ.setdefault(_name, "1")

import pytest
import soak_run
from file_costs import UNKNOWN_S, load_costs
from synthetic import convert_tiny_model, make_tiny_fer, train_tiny_keras_model, train_tiny_run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TESTS = Path(__file__).resolve().parent
#: Test folders whose name is the marker their tests get.
FOLDER_MARKERS = ("edge", "train", "convert", "evaluate", "data", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        try:
            folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))
    # the longest files first (file_costs.py: pytest-xdist's workers then finish together);
    # the soak runs in the background from the end of collection (soak_run.py): its test,
    # which waits for the result, goes last
    costs = load_costs()
    if costs:
        items.sort(key=lambda item: -costs.get(item.nodeid.split("::")[0], UNKNOWN_S))
    items.sort(key=lambda item: item.name == soak_run.SOAK_TEST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the CPUs this process may use. Much of the suite
    waits (brokers, subprocesses starting, the soak's real-time video): with one worker per
    core the CPU sat 5-40% idle through the second half of a CI run (sampled from
    /proc/stat); a spare worker fills those waits."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) + 1


def pytest_configure(config):
    """(pytest-xdist) Hand out files in the order of the collection (longest first, above)
    rather than by their number of tests, when a cost table is there to order them."""
    if getattr(config.option, "loadscopereorder", None) and load_costs():
        config.option.loadscopereorder = False


def pytest_collection_finish(session):
    soak_run.start_early(session.config, session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """(pytest-xdist controller) Tell each worker where the controller's soak run writes."""
    node.workerinput[soak_run.WORKER_INPUT] = str(soak_run.worker_folder(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """(pytest-xdist controller) Start the soak when a worker collected its test."""
    soak_run.start_for_workers(node.config, ids)


def pytest_sessionfinish(session):
    soak_run.finish(session.config)


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory, monkeypatch) -> Path:
    """Each test (and the daemons it starts) keeps its state (the MQTT outbox, seq) in a folder
    of its own, never in ~/.local/state or a systemd StateDirectory."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder / "deepfer"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (DEEPFER_DATA); skips the test when it is not set."""
    value = os.environ.get("DEEPFER_DATA")
    if not value:
        pytest.skip("DEEPFER_DATA is not set: point it at the shared data folder to run this test")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"DEEPFER_DATA={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def media_dir(data_dir: Path) -> Path:
    path = data_dir / "media"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


def made_once(tmp_path_factory, name: str, make) -> Path:
    """``make(folder)``'s result for a session fixture, made once per test run. Under
    pytest-xdist (``pytest -n auto``) each worker is a session of its own: there the first
    worker that needs it makes it in a folder the run's workers share, and the others wait for
    it (a lock) instead of training or converting the same model again."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's
    folder, made = root / name, root / f"{name}.made"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if made.is_file():
            return Path(made.read_text())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        result = make(folder)
        made.write_text(str(result))
        return result


@pytest.fixture(scope="session")
def tiny_fer(tmp_path_factory) -> Path:
    """A tiny FER2013-like folder with train/ and test/."""
    return made_once(tmp_path_factory, "tiny_fer", make_tiny_fer)


@pytest.fixture(scope="session")
def tiny_keras_model(tmp_path_factory, tiny_fer) -> Path:
    """A deepfer-edge model trained a few epochs on the tiny set (seconds; needs Keras)."""
    pytest.importorskip("keras")
    return made_once(
        tmp_path_factory,
        "tiny_model",
        lambda folder: train_tiny_keras_model(tiny_fer, folder / "tiny.keras"),
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_fer) -> Path:
    """A `deepfer train` run folder on the tiny set, ``run3/`` (seed 3; 3 epochs with their
    snapshots; split seed 9), shared by the ensemble, distillation and averaging tests:
    read it, copy it to change it."""
    pytest.importorskip("tensorflow")
    return made_once(
        tmp_path_factory, "tiny_run3", lambda f: train_tiny_run(tiny_fer, f / "run3", 3)
    )


@pytest.fixture(scope="session")
def second_tiny_run(tmp_path_factory, tiny_fer) -> Path:
    """As :func:`tiny_run` with seed 4, ``run4/``: the same validation faces, other weights."""
    pytest.importorskip("tensorflow")
    return made_once(
        tmp_path_factory, "tiny_run4", lambda f: train_tiny_run(tiny_fer, f / "run4", 4)
    )


@pytest.fixture(scope="session")
def tiny_tflite_model(tmp_path_factory, tiny_keras_model, tiny_fer) -> Path:
    """The tiny model converted by ``deepfer convert``'s API: ``tiny_int8.tflite`` (full int8)
    with its complete sidecar, and ``tiny_float32.tflite`` beside it; both checked on tiny_fer's test split.
    (tests/edge uses the committed copy of such a model instead: no TensorFlow there.)"""

    def convert(folder: Path) -> Path:
        trained_on = "synthetic test faces (tests/conftest.py)"
        result = convert_tiny_model(tiny_keras_model, tiny_fer, folder / "tiny", trained_on)
        return result.path("int8")

    return made_once(tmp_path_factory, "tiny_tflite", convert)
