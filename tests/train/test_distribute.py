"""`deepfer train --distribute`: MirroredStrategy on two logical CPU devices, and
MultiWorkerMirroredStrategy with two real worker processes on loopback (TF_CONFIG).

Logical devices must be set before TensorFlow initialises, so each training runs in a fresh
Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from broker_process import free_port

from deepfer.train.config import ConfigError, TrainConfig
from deepfer.train.distribute import scaled, worker_index

pytest.importorskip("tensorflow")

#: Runs `deepfer train` with the CPU split into N logical devices (argv[1]); the rest is argv.
RUNNER = """
import sys
import tensorflow as tf
n = int(sys.argv[1])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
from deepfer.cli import main
sys.exit(main(sys.argv[2:]))
"""

TINY = ["--model", "deepfer-edge", "--epochs", "1", "--threads", "1", "--no-progress"]


def run_train(devices: int, argv: list[str], env: dict | None = None, wait=True):
    cmd = [sys.executable, "-c", RUNNER, str(devices), "train", *argv]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    if not wait:
        return subprocess.Popen(
            cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=300)


def test_scaling_and_worker_index(monkeypatch):
    cfg = TrainConfig(batch_size=32, lr=1e-3)
    assert scaled(cfg, 1) is cfg
    four = scaled(cfg, 4)
    assert (four.batch_size, four.lr) == (128, pytest.approx(4e-3))
    assert (cfg.batch_size, cfg.lr) == (32, 1e-3)  # the saved options stay per replica
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_index() == 0
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {}, "task": {"type": "worker", "index": 1}})
    )
    assert worker_index() == 1


def test_bad_distribute_options(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="train.distribute = 'horovod'"):
        TrainConfig(data=str(tmp_path), distribute="horovod").validate()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not JSON"):
        TrainConfig(data=str(tmp_path), distribute="multiworker").validate()


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(tiny_fer, tmp_path):
    out = tmp_path / "mirrored"
    argv = ["--data", str(tiny_fer), "--out", str(out), "--batch-size", "16", "--lr", "5e-4"]
    proc = run_train(2, [*argv, *TINY, "--distribute", "mirrored"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--distribute mirrored: 2 replica(s), global batch 32, peak lr 0.001" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["distribute"] == "mirrored" and config["batch_size"] == 16
    # 154 training faces in global batches of 32: 5 steps; warm-up epoch at half the peak
    history = json.loads((out / "history.json").read_text())
    assert history["learning_rate"][0] == pytest.approx(1e-3 / 2)
    assert (out / "deepfer-edge.keras").is_file()


@pytest.mark.slow
def test_multiworker_two_processes(tiny_fer, tmp_path):
    out = tmp_path / "multi"
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    argv = ["--data", str(tiny_fer), "--out", str(out), "--batch-size", "16"]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(
            run_train(
                1,
                [*argv, *TINY, "--distribute", "multiworker"],
                env={"TF_CONFIG": json.dumps(tf_config)},
                wait=False,
            )
        )
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text
        assert "--distribute multiworker: 2 replica(s), global batch 32" in text
    assert (out / "deepfer-edge.keras").is_file()  # the chief's run folder
    assert (out / "worker-1" / "config.json").is_file()  # the other worker's, apart
    assert Path(out / "history.json").is_file()
