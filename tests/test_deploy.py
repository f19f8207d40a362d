"""The deployment files stay in step with the code: every package in the image, valid compose, a
systemd command line the CLI accepts. (No container engine runs here; these guard against drift.)"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

import yaml

from draftdesk.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def test_the_image_copies_every_package_and_every_file_it_names_exists() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {name.rstrip("*") for name in include["include"]}
    copied = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            sources = line.split()[1:-1]
            copied.update(sources)
            assert all((REPO / source).exists() for source in sources), line
    assert packages <= copied
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)  # not root
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


def test_compose_builds_that_image_with_a_gpu_and_volumes_for_data_adapters_and_models() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["draftdesk"]
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    targets = {volume.split(":")[1] for volume in service["volumes"]}
    assert {"/data", "/adapters", "/models"} <= targets
    [device] = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]


def test_the_systemd_unit_runs_a_command_the_cli_accepts_with_secrets_from_a_file() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "draftdesk.service").read_text())
    service = unit["Service"]
    program, *arguments = shlex.split(service["ExecStart"])
    assert program.endswith("/.venv/bin/draftdesk")
    assert build_parser().parse_args(arguments).command == "run"
    assert service["EnvironmentFile"].startswith("/etc/") and service["User"] != "root"
    assert service["Restart"] == "on-failure"


def test_the_backup_timer_runs_a_backup_the_cli_accepts_as_the_bots_user() -> None:
    def unit(name: str) -> configparser.ConfigParser:
        parsed = configparser.ConfigParser(interpolation=None, strict=False)
        parsed.optionxform = str  # type: ignore[assignment,method-assign]
        parsed.read_string((DEPLOY / name).read_text())
        return parsed

    service = unit("draftdesk-backup.service")["Service"]
    program, *arguments = shlex.split(service["ExecStart"])
    args = build_parser().parse_args(arguments)
    assert program.endswith("/.venv/bin/draftdesk") and args.command == "backup"
    assert args.into is not None and args.keep >= 7
    assert service["User"] == unit("draftdesk.service")["Service"]["User"]  # the store's owner
    assert str(args.into).startswith(service["ReadWritePaths"])
    assert unit("draftdesk-backup.timer")["Timer"]["Unit"] == "draftdesk-backup.service"
