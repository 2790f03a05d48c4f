"""The `deepfer` command and the edge daemon's life cycle: one error type, clean endings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_subprocess import env_without_settings

from deepfer.cli import main
from deepfer.edge.errors import ConfigError, DeepFERError, OutputError, SourceError


def test_a_second_config_gets_its_own_detector(media_dir, tiny_tflite_model, tmp_path, capsys):
    """`deepfer detect` once kept detectors in a module-level dict keyed on width only."""
    image = str(media_dir / "justin.jpg")
    assert main(["detect", image, "--model", str(tiny_tflite_model)]) == 0
    conf = tmp_path / "other.toml"
    conf.write_text('[detector]\nbackend = "haar"\ncascade = "haarcascade_no_such_cascade.xml"\n')
    capsys.readouterr()
    code = main(["detect", image, "--model", str(tiny_tflite_model), "--config", str(conf)])
    assert code == 1  # that input failed (with the cached detector it succeeded)
    assert "detector.cascade = 'haarcascade_no_such_cascade.xml'" in capsys.readouterr().err


def test_detect_into_a_closed_pipe_ends_quietly(media_dir, tiny_tflite_model):
    """`deepfer detect ... | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    cmd = (
        f"{sys.executable} -m deepfer detect {media_dir / 'woman2.mp4'} --json "
        f"--model {tiny_tflite_model} 2>stderr.txt | head -1; cat stderr.txt"
    )
    proc = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, timeout=300,
        env=env_without_settings(), cwd=str(tiny_tflite_model.parent),
    )  # fmt: skip
    first, _, stderr = proc.stdout.partition("\n")
    assert first == "["  # the JSON list began
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_every_error_the_command_reports_is_a_deepfer_error():
    from deepfer.convert.errors import ConvertError
    from deepfer.edge.errors import (
        DetectorError,
        ModelInfoError,
        ModelLoadError,
        ModelNotFound,
        MqttConfigError,
        RuntimeUnavailable,
        SecretError,
    )

    errors = [ConfigError, MqttConfigError, SourceError, DetectorError, ModelInfoError]
    errors += [ModelLoadError, ModelNotFound, RuntimeUnavailable, SecretError, OutputError]
    assert all(issubclass(e, DeepFERError) and e.exit_code == 2 for e in errors)
    assert issubclass(ConvertError, DeepFERError)


class Recording:
    """A sink that records its life."""

    name = "recording"

    def __init__(self, log: list[str], fail_start: bool = False):
        self.log = log
        self.fail_start = fail_start

    def start(self):
        if self.fail_start:
            raise OutputError("cannot start")
        self.log.append("start")

    def on_frame(self, result):
        self.log.append("frame")

    def publish_event(self, event):
        self.log.append(event["type"])

    def stats(self):
        return {}

    def close(self):
        self.log.append("close")


def test_the_daemon_closes_what_it_started_when_setup_fails(tiny_tflite_model):
    from deepfer.edge.capture.frame import Frame
    from deepfer.edge.capture.sources import Source
    from deepfer.edge.config import load_config
    from deepfer.edge.daemon import Daemon

    class Still(Source):
        name = "still"
        closed = False

        def read(self):
            return Frame(gray=np.zeros((48, 64), np.uint8), size=(64, 48))

        def close(self):
            Still.closed = True

    config = load_config(None, environ={}, overrides={"model.path": str(tiny_tflite_model)})
    log: list[str] = []
    daemon = Daemon(config, sinks=[Recording(log), Recording(log, fail_start=True)], source=Still())
    with pytest.raises(OutputError), daemon:
        pass
    assert log == ["start", "close"] and Still.closed  # the started sink and the source

    log.clear()
    config.run.max_frames = 3
    with Daemon(config, sinks=[Recording(log)], source=Still()) as daemon:
        stats = daemon.run()
    assert log == ["start", "frame", "frame", "frame", "close"] and stats["frames"] == 3


def test_no_private_daemon_calls_in_commands():
    import inspect
    import re

    from deepfer.edge import commands

    source = inspect.getsource(commands).replace("argparse._SubParsersAction", "")
    assert not re.findall(r"\b(?:daemon|self)\._\w+", source)


def test_subcommands_come_from_the_entry_point_group(monkeypatch, capsys):
    import argparse
    from importlib.metadata import EntryPoint

    import deepfer.cli as cli

    class Boom(DeepFERError):
        exit_code = 7

    def register(sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser("hello")
        p.add_argument("--fail", choices=("no", "deepfer", "bug"), default="no")
        p.set_defaults(handler=handler)

    def handler(args) -> int:
        if args.fail == "deepfer":
            raise Boom("the input is bad")
        if args.fail == "bug":
            raise ZeroDivisionError("a bug")
        print("hello")
        return 0

    module = type(sys)("fake_stage")
    module.register = register
    monkeypatch.setitem(sys.modules, "fake_stage", module)
    real = cli.entry_points

    def entry_points(group):
        return [*real(group=group), EntryPoint("fake", "fake_stage:register", group)]

    monkeypatch.setattr(cli, "entry_points", entry_points)
    assert cli.main(["hello"]) == 0 and capsys.readouterr().out == "hello\n"
    assert cli.main(["hello", "--fail", "deepfer"]) == 7
    assert capsys.readouterr().err == "deepfer hello: error: the input is bad\n"
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli.main(["hello", "--fail", "bug"])
    names = [ep.name for ep in real(group=cli.GROUP)]
    assert {"edge", "train", "convert"} <= set(names)


def test_no_registered_subcommands_is_a_clear_error(monkeypatch, capsys):
    import deepfer.cli as cli

    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    with pytest.raises(SystemExit) as err:
        cli.main(["run"])
    assert err.value.code == 2 and "reinstall DeepFER" in capsys.readouterr().err


def test_every_commands_detector_choices_are_the_configs_backends():
    """The flags list the backends by hand (argparse only at import time); they must stay the
    ones `detector.backend` accepts."""
    import argparse

    from deepfer.cli import build_parser
    from deepfer.edge.config.sections import BACKENDS

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = 0
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if "--detector" in action.option_strings:
                assert tuple(action.choices) == BACKENDS, name
                seen += 1
    assert seen >= 3  # detect, run, view
