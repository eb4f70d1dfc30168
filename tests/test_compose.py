"""Static checks of the Docker Compose stack in ``compose/``: no Docker engine, no network.

The stack cannot be started here, so what would break it on a user's machine is checked
against the code and the documentation instead: every Lectr service runs a real ``lectr``
command whose options the command's own parser accepts; it sets only documented
settings, with values the processes accept; it waits for the migration and for what it
uses; it can be scaled; the image is built from the repository's own files; and the
README's compose commands name what exists. Each checker returns a list of problems, so
the negative tests can prove a checker catches what it is meant to catch.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fnmatch
import importlib.util
import io
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml

from lectr import cli, processes
from lectr.errors import CommandError
from lectr.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
HAPROXY_CFG = COMPOSE_DIR / "haproxy.cfg"
HEALTHCHECK_SCRIPT = COMPOSE_DIR / "healthcheck.py"
README = ROOT / "README.md"

# Stands in for the secrets .env.example leaves empty (compose refuses to start without).
SECRET_PLACEHOLDER = "compose-check-secret-0123456789"

Compose = dict[str, Any]
Service = dict[str, Any]


# --- reading the files ------------------------------------------------------------------


def load_compose() -> Compose:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(compose, dict), f"{COMPOSE_FILE} is not a YAML mapping"
    return compose


@dataclass
class EnvFile:
    """A dotenv file: its assignments, and the names in commented-out assignments."""

    values: dict[str, str] = field(default_factory=dict)
    commented: set[str] = field(default_factory=set)


_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_env_file(text: str) -> EnvFile:
    env = EnvFile()
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            found = _ASSIGNMENT.match(line.lstrip("#").strip())
            if found:
                env.commented.add(found.group(1))
            continue
        found = _ASSIGNMENT.match(line)
        if found:
            value = found.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            env.values[found.group(1)] = value
    return env


def load_env_example() -> EnvFile:
    return parse_env_file(ENV_EXAMPLE.read_text())


@dataclass
class Documented:
    """The settings README.md's Configuration tables document."""

    names: set[str]
    patterns: list[re.Pattern[str]]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self.names or any(p.fullmatch(name) for p in self.patterns)
        )


def readme_section(text: str, title: str) -> str:
    """The body of the ``## title`` section (up to the next ``## `` heading)."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"README.md has no '## {title}' section"
    return found.group(1)


def documented_settings(readme: str) -> Documented:
    """Every ``LECTR_…`` name in the first cell of a Configuration table row;
    ``LECTR_<PROVIDER>_BASE_URL`` stands for any provider name."""
    names: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for line in readme_section(readme, "Configuration").splitlines():
        if not line.startswith("| `LECTR_"):
            continue
        first_cell = line.split("|")[1]
        for name in re.findall(r"`(LECTR_[A-Z0-9_<>]+)`", first_cell):
            if "<" in name:
                patterns.append(re.compile(re.sub(r"<[A-Z_]+>", "[A-Z0-9]+", name)))
            else:
                names.add(name)
    return Documented(names, patterns)


# --- the Lectr services -------------------------------------------------------------------


def is_lectr_service(service: Service) -> bool:
    """Built from compose/Dockerfile: its command is a ``lectr`` command."""
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == "compose/Dockerfile"


def lectr_services(compose: Compose) -> dict[str, Service]:
    return {name: s for name, s in compose["services"].items() if is_lectr_service(s)}


def one_shot_services(compose: Compose) -> set[str]:
    """Services another waits for to complete (``lectr migrate``): they exit by design."""
    return {
        name
        for service in compose["services"].values()
        for name, condition in depends_on(service).items()
        if condition == "service_completed_successfully"
    }


def depends_on(service: Service) -> dict[str, str]:
    """``depends_on`` in either form, as service name → condition."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def environment(service: Service) -> dict[str, str]:
    """A service's ``environment:`` in either form, values as written (not interpolated)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {name: "" if value is None else str(value) for name, value in raw.items()}


_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``; a required
    variable left empty in .env.example becomes :data:`SECRET_PLACEHOLDER`."""

    def substitute(found: re.Match[str]) -> str:
        name, operator, argument = found.groups()
        current = env.get(name, "")
        if operator in (":-", "-"):
            return current or argument
        if operator in (":?", "?"):
            return current or SECRET_PLACEHOLDER
        return current

    return _INTERPOLATION.sub(substitute, value).replace("$$", "$")


def service_env(service: Service, env_example: EnvFile) -> dict[str, str]:
    """What a service's processes see: its env_file (.env.example here), then its
    ``environment:`` (which wins), interpolated from .env.example."""
    resolved = dict(env_example.values) if service.get("env_file") else {}
    resolved.update(
        {k: interpolate(v, env_example.values) for k, v in environment(service).items()}
    )
    return resolved


# --- checking a command with the CLI's own parsers ------------------------------------------


class _Parsed(Exception):
    """Raised instead of running a process once its options parsed."""


def command_problem(command: object) -> str | None:
    """None when ``lectr *command`` parses: the subcommand exists and the options are
    the ones its own parser (``lectr proxy``'s, ``lectr consumer``'s, …) accepts."""
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        return f"command must be a non-empty list of strings, got {command!r}"
    shown = f"`lectr {shlex.join(command)}`"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args, extra = cli._parser().parse_known_args(command)
    except SystemExit:
        return f"{shown} does not parse: {_last_line(stderr)}"
    if args.command in cli.HANDLERS:
        return f"{shown}: unrecognized arguments: {shlex.join(extra)}" if extra else None
    return _process_options_problem(args.command, extra, shown)


def _process_options_problem(name: str, argv: list[str], shown: str) -> str | None:
    """Run the process's entry point with parse_args stopping it right after parsing."""
    run = processes.entry_point(name)
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parse_args(self, *args, **kwargs)
        raise _Parsed

    stderr = io.StringIO()
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            run(None, list(argv))  # type: ignore[arg-type]  # no settings: must parse first
        except _Parsed:
            return None
        except SystemExit:
            return f"{shown} does not parse: {_last_line(stderr)}"
        except CommandError as exc:
            return f"{shown} does not parse: {exc}"
        except Exception as exc:
            return f"{shown}: could not check its options ({type(exc).__name__}: {exc})"
    return f"{shown}: its entry point returned without parsing its options"


def _last_line(stream: io.StringIO) -> str:
    lines = stream.getvalue().strip().splitlines()
    return lines[-1] if lines else "(no message)"


# --- checkers: each returns the problems it finds -------------------------------------------


def command_problems(compose: Compose) -> list[str]:
    """Every Lectr service runs a real ``lectr`` command with options that parse."""
    problems = []
    for name, service in lectr_services(compose).items():
        if "command" not in service:
            problems.append(f"service {name}: no command (the image's default is `lectr up`)")
            continue
        problem = command_problem(service["command"])
        if problem:
            problems.append(f"service {name}: {problem}")
    return problems


def undocumented_settings(
    compose: Compose, env_example: EnvFile, documented: Documented, dockerfile: str
) -> list[str]:
    """Every ``LECTR_*`` variable the stack sets is one README.md documents (a misspelt
    name is silently ignored by Lectr, so the setting would never apply)."""
    where: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for variable in environment(service):
            where.setdefault(variable, set()).add(f"service {name}")
    for variable in env_example.values.keys() | env_example.commented:
        where.setdefault(variable, set()).add(".env.example")
    for variable in dockerfile_env(dockerfile):
        where.setdefault(variable, set()).add("Dockerfile ENV")
    return [
        f"{variable} (in {', '.join(sorted(places))}) is not documented in README.md's "
        "Configuration section"
        for variable, places in sorted(where.items())
        if variable.startswith("LECTR_") and variable not in documented
    ]


def dependency_problems(compose: Compose) -> list[str]:
    """Every ``depends_on`` names a defined service, and a Lectr service starts only once
    the migration completed (otherwise the proxy exits: schema not at the latest version)."""
    services = compose["services"]
    one_shot = one_shot_services(compose)
    problems = []
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"service {name} depends on {target!r}, which is not defined")
            elif condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"service {name} waits for {target} healthy: it has no healthcheck")
    for name, service in lectr_services(compose).items():
        if name in one_shot:
            continue
        if depends_on(service).get("migrate") != "service_completed_successfully":
            problems.append(
                f"service {name} must depend on migrate: condition: service_completed_successfully"
            )
    return problems


def healthcheck_problems(compose: Compose) -> list[str]:
    """Every long-running service has a real healthcheck (not a constant ``true``)."""
    problems = []
    one_shot = one_shot_services(compose)
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        if name in one_shot:
            continue
        if not isinstance(check, dict) or check.get("disable") or not check.get("test"):
            problems.append(f"service {name} has no healthcheck")
            continue
        test = check["test"]
        words = test if isinstance(test, list) else ["CMD-SHELL", test]
        if words[0] not in ("CMD", "CMD-SHELL") or words[1:] in (["true"], ["exit 0"], []):
            problems.append(f"service {name}: healthcheck {test!r} checks nothing")
    return problems


def host_ports(service: Service) -> list[str]:
    """The host side of each ``ports:`` entry ('' when Docker picks one)."""
    found = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            found.append(str(entry.get("published") or ""))
            continue
        parts = str(entry).split(":")
        found.append(parts[-2] if len(parts) >= 2 else "")
    return found


def scaling_problems(compose: Compose, names: set[str]) -> list[str]:
    """Services meant to run as many replicas have no ``container_name`` and no fixed
    host port (the second replica could not bind it)."""
    problems = []
    for name in sorted(names):
        service = compose["services"].get(name)
        if service is None:
            problems.append(f"service {name} is not defined")
            continue
        if "container_name" in service:
            problems.append(f"service {name} has a container_name: it cannot be scaled")
        for port in host_ports(service):
            if port and "-" not in port:
                problems.append(f"service {name} publishes fixed host port {port}")
    return problems


def strings(value: object) -> Iterator[str]:
    """Every string in a parsed YAML document, keys included (comments are gone)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def interpolation_problems(compose: Compose, env_example: EnvFile) -> list[str]:
    """Every ``${VAR}`` docker-compose.yml interpolates is defined in .env.example, so a
    user who copies it to .env gets no blank value."""
    used = {found.group(1) for text in strings(compose) for found in _INTERPOLATION.finditer(text)}
    return [
        f"docker-compose.yml uses ${{{name}}}, which .env.example does not define"
        for name in sorted(used - env_example.values.keys())
    ]


SETTINGS_LOADERS: dict[str, str] = {
    "proxy": "proxy.settings:ProxySettings",
    "consumer": "consumers.settings:ConsumerSettings",
    "scheduler": "scheduler.settings:SchedulerSettings",
    "api": "api.settings:ApiSettings",
}


def _settings_class(name: str) -> Any:
    module, attribute = SETTINGS_LOADERS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def settings_problems(compose: Compose, env_example: EnvFile) -> list[str]:
    """Each Lectr service's environment is accepted by the settings its process reads
    (a bad value stops the process at start)."""
    problems = []
    for name, service in lectr_services(compose).items():
        env = service_env(service, env_example)
        command = service.get("command") or [""]
        loaders: list[Callable[[Mapping[str, str]], object]] = [Settings.from_env]
        if command[0] in SETTINGS_LOADERS:
            loaders.append(_settings_class(command[0]).from_env)
        for load in loaders:
            try:
                load(env)
            except SettingsError as exc:
                problems.append(f"service {name}: {exc}")
    return problems


def _seconds(value: object) -> float:
    """A compose duration (``1m30s``, ``45s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts, f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def stop_grace_problems(compose: Compose, env_example: EnvFile) -> list[str]:
    """Compose kills a container 10 s after SIGTERM unless told otherwise: each process
    gets at least the time its settings need to drain (the proxy its streams and buffer,
    the consumer its batch), as ``lectr up`` gives it."""
    problems = []
    for name, service in lectr_services(compose).items():
        command = service.get("command") or [""]
        needed = processes.stop_deadline_s(command[0], service_env(service, env_example))
        if needed is None:
            continue
        given = _seconds(service.get("stop_grace_period", "10s"))
        if given < needed:
            problems.append(
                f"service {name}: stop_grace_period {given:g} s, its process needs {needed:g} s"
            )
    return problems


def listening_port(process: str, env: Mapping[str, str]) -> int | None:
    """The port process ``process`` serves HTTP on with settings ``env``."""
    if process == "proxy":
        return Settings.from_env(env).proxy_port
    if process == "api":
        return Settings.from_env(env).api_port
    if process == "scheduler":
        return _settings_class("scheduler").from_env(env).port
    return None


def http_healthcheck_url(service: Service) -> str | None:
    test = (service.get("healthcheck") or {}).get("test") or []
    if isinstance(test, list) and len(test) >= 2 and "http" in test[:-1]:
        return test[-1]
    return None


def health_port_problems(compose: Compose, env_example: EnvFile) -> list[str]:
    """An HTTP healthcheck asks the port the process listens on."""
    problems = []
    for name, service in lectr_services(compose).items():
        url = http_healthcheck_url(service)
        command = service.get("command") or [""]
        port = listening_port(command[0], service_env(service, env_example))
        if url is None or port is None:
            continue
        if urlsplit(url).port != port:
            problems.append(f"service {name}: healthcheck asks {url}, it listens on {port}")
    return problems


# --- the Dockerfile ---------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: int

    def words(self) -> list[str]:
        """The arguments as a list: JSON (exec) form or shell words."""
        text = self.arguments.strip()
        if text.startswith("["):
            return json.loads(text)
        return shlex.split(text)


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped; ``stage`` counts
    ``FROM`` lines from 0."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") or (not raw.strip() and not pending):
            continue
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    instructions = []
    stage = -1
    for line in logical:
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


def dockerfile_env(text: str) -> dict[str, str]:
    """Every variable an ``ENV`` instruction sets (``ENV A=1 B=2`` form)."""
    found: dict[str, str] = {}
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "ENV":
            for word in instruction.words():
                name, _, value = word.partition("=")
                found[name] = value
    return found


def stage_names(instructions: list[Instruction]) -> dict[str, int]:
    names = {}
    for instruction in instructions:
        words = instruction.words() if instruction.keyword == "FROM" else []
        if len(words) == 3 and words[1].upper() == "AS":
            names[words[2]] = instruction.stage
    return names


@dataclass
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None
    stage: int


def copies(instructions: list[Instruction]) -> list[Copy]:
    found = []
    for instruction in instructions:
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        words = instruction.words()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        found.append(Copy(paths[:-1], paths[-1], from_stage, instruction.stage))
    return found


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a folder holding it) out of the context;
    as in Docker, the last matching pattern wins and ``!`` re-includes."""
    parts = Path(path.rstrip("/")).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.lstrip("!").strip("/").removeprefix("**/")
        if any(fnmatch.fnmatchcase(p, cleaned) or fnmatch.fnmatchcase(p, pattern.lstrip("!"))
               for p in prefixes):  # fmt: skip
            ignored = not negated
    return ignored


def copy_source_problems(instructions: list[Instruction]) -> list[str]:
    """Each ``COPY`` source exists in the repository (the build context) and is not
    ignored by .dockerignore; each ``--from`` names an earlier stage."""
    problems = []
    names = stage_names(instructions)
    patterns = dockerignore_patterns()
    for item in copies(instructions):
        if item.from_stage is not None:
            if names.get(item.from_stage, item.stage) >= item.stage:
                problems.append(f"COPY --from={item.from_stage}: no earlier stage of that name")
            continue
        for source in item.sources:
            if not list(ROOT.glob(source.rstrip("/") or ".")):
                problems.append(f"COPY {source}: no such file in the repository")
            elif is_ignored(source, patterns):
                problems.append(f"COPY {source}: excluded by .dockerignore")
    return problems


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def copied_before(instructions: list[Instruction], index: int) -> set[str]:
    """Sources copied (from the context) into the stage of ``instructions[index]`` before it."""
    stage = instructions[index].stage
    before = [i for i in instructions[:index] if i.stage == stage]
    return {s.rstrip("/") for c in copies(before) if c.from_stage is None for s in c.sources}


def first_index(instructions: list[Instruction], keyword: str, pattern: str) -> int | None:
    for index, instruction in enumerate(instructions):
        if instruction.keyword == keyword and re.search(pattern, instruction.arguments):
            return index
    return None


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def python_install_problems(instructions: list[Instruction]) -> list[str]:
    """Lectr is installed with ``pip install .`` (not editable, no extras) after every
    file pyproject.toml needs is copied: itself, its readme and license files, and each
    package it finds."""
    index = first_index(instructions, "RUN", r"pip install\b[^&;|]*\s['\"]?\.(\[|\s|['\"]|$)")
    if index is None:
        return ["no `RUN pip install … .` installs the project from pyproject.toml"]
    problems = []
    run = instructions[index].arguments
    if re.search(r"pip install[^&;|]*(\s-e\s|--editable|\.\[)", run):
        problems.append(f"`{run}` must install `.` plainly: not editable, no extras")
    project = pyproject()
    needed = {"pyproject.toml", project["project"]["readme"], *project["project"]["license-files"]}
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed |= {pattern.rstrip("*") for pattern in includes}
    missing = sorted(needed - copied_before(instructions, index))
    if missing:
        problems.append(f"not copied before `pip install .`: {', '.join(missing)}")
    if instructions[index].stage != max(i.stage for i in instructions):
        problems.append("Lectr is not installed in the final stage")
    return problems


def dashboard_build_problems(instructions: list[Instruction]) -> list[str]:
    """The dashboard is built like ``make dashboard``: ``npm ci`` from the committed
    lock, then ``npm run build``, and the final stage serves that build from
    ``LECTR_DASHBOARD_DIR``."""
    ci = first_index(instructions, "RUN", r"\bnpm ci\b")
    build = first_index(instructions, "RUN", r"\bnpm run build\b")
    if ci is None or build is None:
        return ["the dashboard is not built with `npm ci` then `npm run build`"]
    problems = []
    if not ci < build or instructions[ci].stage != instructions[build].stage:
        problems.append("`npm ci` must come before `npm run build`, in the same stage")
    if "dashboard/package-lock.json" not in copied_before(instructions, ci):
        problems.append("dashboard/package-lock.json is not copied before `npm ci`")
    if "dashboard" not in copied_before(instructions, build):
        problems.append("dashboard/ is not copied before `npm run build`")
    stage_name = {v: k for k, v in stage_names(instructions).items()}.get(instructions[build].stage)
    served = dockerfile_env("\n".join(f"{i.keyword} {i.arguments}" for i in instructions))
    into = [c.destination for c in copies(instructions) if c.from_stage == stage_name]
    if served.get("LECTR_DASHBOARD_DIR") not in into:
        problems.append(
            f"LECTR_DASHBOARD_DIR ({served.get('LECTR_DASHBOARD_DIR')}) is not where the "
            f"build is copied ({into})"
        )
    return problems


def runtime_problems(instructions: list[Instruction]) -> list[str]:
    """The final stage runs ``lectr`` (the console script) as a non-root user."""
    problems = []
    last = final_stage(instructions)
    users = [i.arguments.split(":")[0] for i in last if i.keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("the final stage must switch to a non-root USER")
    entrypoints = [i.words() for i in last if i.keyword == "ENTRYPOINT"]
    if not entrypoints or entrypoints[-1] != ["lectr"]:
        problems.append(f'ENTRYPOINT must be ["lectr"], got {entrypoints[-1:] or None}')
    if "lectr" not in pyproject()["project"]["scripts"]:
        problems.append("pyproject.toml installs no `lectr` console script")
    return problems


def healthcheck_file_problems(compose: Compose, instructions: list[Instruction]) -> list[str]:
    """Files a Lectr healthcheck runs from the image are copied into it."""
    destinations = {c.destination for c in copies(final_stage(instructions))}
    problems = []
    for name, service in lectr_services(compose).items():
        test = (service.get("healthcheck") or {}).get("test") or []
        for word in test if isinstance(test, list) else []:
            if word.startswith("/app/") and word not in destinations:
                problems.append(f"service {name}: healthcheck runs {word}, not in the image")
    return problems


# --- the README's compose commands ------------------------------------------------------------

_COMPOSE_VALUE_OPTIONS = {"-f", "--file", "-p", "--project-name", "--env-file", "--profile"}
_SUBCOMMAND_VALUE_OPTIONS = {
    "--scale", "-e", "--env", "-u", "--user", "-w", "--workdir", "--entrypoint", "--name",
    "-t", "--timeout", "-n", "--tail",
}  # fmt: skip
_SERVICE_LISTS = {"up", "logs", "ps", "stop", "start", "restart", "pull", "build", "down", "rm"}


@dataclass
class ComposeCommand:
    line: str
    files: list[str]
    subcommand: str
    scales: dict[str, str]
    services: list[str]


def readme_compose_commands(readme: str) -> list[ComposeCommand]:
    """Every line of README.md that starts with ``docker compose``."""
    found = []
    for raw in readme.splitlines():
        line = raw.strip()
        if line.startswith("docker compose"):
            found.append(parse_compose_command(line))
    return found


def parse_compose_command(line: str) -> ComposeCommand:
    words = shlex.split(line, comments=True)[2:]
    files: list[str] = []
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option in _COMPOSE_VALUE_OPTIONS and words:
            value = words.pop(0)
            if option in ("-f", "--file"):
                files.append(value)
    subcommand = words.pop(0) if words else ""
    scales: dict[str, str] = {}
    positionals: list[str] = []
    while words:
        word = words.pop(0)
        if word in _SUBCOMMAND_VALUE_OPTIONS and words:
            value = words.pop(0)
            if word == "--scale":
                name, _, count = value.partition("=")
                scales[name] = count
        elif not word.startswith("-"):
            positionals.append(word)
    services = positionals if subcommand in _SERVICE_LISTS else positionals[:1]
    return ComposeCommand(line, files, subcommand, scales, services)


def readme_compose_problems(readme: str, compose: Compose, scalable: set[str]) -> list[str]:
    """The README's ``docker compose`` commands name the compose file, services that
    exist, and scale only scalable services."""
    commands = readme_compose_commands(readme)
    if not commands:
        return ["README.md has no line starting with `docker compose`"]
    problems = []
    for command in commands:
        if not command.files or any(not (ROOT / f).is_file() for f in command.files):
            problems.append(f"`{command.line}`: -f must name the compose file ({command.files})")
        for name, count in command.scales.items():
            if name not in scalable or not count.isdigit():
                problems.append(f"`{command.line}`: --scale {name}={count}: not a scalable service")
        problems += [
            f"`{command.line}`: no service {name!r}"
            for name in command.services
            if name not in compose["services"]
        ]
    return problems


def scalable_services(compose: Compose) -> set[str]:
    """Long-running Lectr services that can run as several containers."""
    lectr = lectr_services(compose)
    candidates = set(lectr) - one_shot_services(compose)
    return {name for name in candidates if not scaling_problems(compose, {name})}


# --- the load balancer --------------------------------------------------------------------------


def haproxy_problems(compose: Compose, readme: str) -> list[str]:
    """The lb service balances over the proxy service, on its port, checks ``/health``,
    and has a slot for as many proxies as the README scales to."""
    config = HAPROXY_CFG.read_text()
    template = re.search(r"^\s*server-template\s+\S+\s+(\d+)\s+(\S+):(\d+)", config, re.M)
    if template is None:
        return ["haproxy.cfg has no `server-template NAME COUNT SERVICE:PORT`"]
    slots, service, port = int(template.group(1)), template.group(2), int(template.group(3))
    problems = []
    proxy = compose["services"].get(service)
    if proxy is None or (proxy.get("command") or [""])[0] != "proxy":
        problems.append(f"haproxy.cfg balances over {service!r}, not the proxy service")
    elif port != listening_port("proxy", service_env(proxy, load_env_example())):
        problems.append(f"haproxy.cfg sends to port {port}, not the proxy's")
    if not re.search(r"^\s*option httpchk GET /health\s*$", config, re.M):
        problems.append("haproxy.cfg does not check the proxies' GET /health")
    wanted = [
        int(count)
        for command in readme_compose_commands(readme)
        for name, count in command.scales.items()
        if name == service and count.isdigit()
    ]
    if wanted and max(wanted) > slots:
        problems.append(f"README scales {service} to {max(wanted)}, haproxy.cfg has {slots} slots")
    return problems


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def env_example() -> EnvFile:
    return load_env_example()


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def _problems(problems: list[str]) -> str:
    return "\n".join(problems)


# --- tests: the compose file -------------------------------------------------------------------


def test_compose_file_has_the_services(compose: Compose) -> None:
    """The stack the README describes, in the current compose spec (no ``version:``)."""
    assert "version" not in compose, "the compose spec has no `version:` key any more"
    expected = {"postgres", "rabbitmq", "redis", "mailpit", "migrate"}
    expected |= {"proxy", "consumer", "scheduler", "api"}
    missing = expected - compose["services"].keys()
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"
    lectr = lectr_services(compose)
    assert expected - {"postgres", "rabbitmq", "redis", "mailpit"} <= lectr.keys()
    images = {service.get("image") for service in lectr.values()}
    assert len(images) == 1 and None not in images, f"Lectr services share one image: {images}"


def test_every_lectr_command_parses(compose: Compose) -> None:
    assert command_problems(compose) == [], _problems(command_problems(compose))


def test_every_lectr_setting_is_documented(
    compose: Compose, env_example: EnvFile, readme: str
) -> None:
    problems = undocumented_settings(
        compose, env_example, documented_settings(readme), DOCKERFILE.read_text()
    )
    assert problems == [], _problems(problems)


def test_settings_values_are_accepted(compose: Compose, env_example: EnvFile) -> None:
    assert settings_problems(compose, env_example) == [], _problems(
        settings_problems(compose, env_example)
    )


def test_dependencies(compose: Compose) -> None:
    assert dependency_problems(compose) == [], _problems(dependency_problems(compose))


def test_migrate_is_the_one_shot_migration(compose: Compose) -> None:
    """``migrate`` runs ``lectr migrate`` once (no restart loop) after Postgres is up."""
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert str(migrate.get("restart", "no")) in ("no", "False", "on-failure")
    assert depends_on(migrate).get("postgres") == "service_healthy"
    assert one_shot_services(compose) == {"migrate"}


def test_healthchecks(compose: Compose) -> None:
    assert healthcheck_problems(compose) == [], _problems(healthcheck_problems(compose))


def test_http_healthchecks_ask_the_served_port(compose: Compose, env_example: EnvFile) -> None:
    problems = health_port_problems(compose, env_example)
    assert problems == [], _problems(problems)


def test_scalable_services(compose: Compose) -> None:
    problems = scaling_problems(compose, {"proxy", "consumer", "scheduler"})
    assert problems == [], _problems(problems)


def test_stop_grace_periods_cover_draining(compose: Compose, env_example: EnvFile) -> None:
    problems = stop_grace_problems(compose, env_example)
    assert problems == [], _problems(problems)


def test_env_example_defines_every_interpolated_variable(
    compose: Compose, env_example: EnvFile
) -> None:
    problems = interpolation_problems(compose, env_example)
    assert problems == [], _problems(problems)


def test_env_file_is_not_committed(compose: Compose) -> None:
    """compose/.env holds the secrets: it is git-ignored, and only the example exists."""
    ignores = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ignores & {".env", "compose/.env", "/compose/.env"}, ".gitignore must cover compose/.env"
    uses = {name for name, s in compose["services"].items() if s.get("env_file") == ".env"}
    assert set(lectr_services(compose)) <= uses, "every Lectr service reads env_file: .env"


def test_load_balancer(compose: Compose, readme: str) -> None:
    assert haproxy_problems(compose, readme) == [], _problems(haproxy_problems(compose, readme))


def test_readme_compose_commands(compose: Compose, readme: str) -> None:
    """The README's compose lines run as written: the file exists, the services exist,
    and what they scale can be scaled."""
    problems = readme_compose_problems(readme, compose, scalable_services(compose))
    assert problems == [], _problems(problems)
    scaled = {name for command in readme_compose_commands(readme) for name in command.scales}
    assert {"proxy", "consumer"} <= scaled, "README.md shows --scale proxy=N --scale consumer=N"


# --- tests: the Dockerfile ---------------------------------------------------------------------


def test_dockerfile_is_multi_stage(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "the Dockerfile builds the dashboard in a stage of its own"


def test_dockerfile_copy_sources_exist(instructions: list[Instruction]) -> None:
    problems = copy_source_problems(instructions)
    assert problems == [], _problems(problems)


def test_dockerignore_keeps_host_builds_out() -> None:
    """``COPY dashboard/`` comes after ``npm ci``: the host's node_modules (maybe for
    another platform) or an old dist must not overwrite what the image installed."""
    patterns = dockerignore_patterns()
    for path in ("dashboard/node_modules", "dashboard/dist", ".venv", ".git"):
        assert is_ignored(path, patterns), f".dockerignore must exclude {path}"
    for path in ("dashboard/src", "dashboard/package-lock.json", "lectr", "pyproject.toml"):
        assert not is_ignored(path, patterns), f".dockerignore must not exclude {path}"


def test_dockerfile_installs_from_pyproject(instructions: list[Instruction]) -> None:
    problems = python_install_problems(instructions)
    assert problems == [], _problems(problems)


def test_dockerfile_builds_the_dashboard(instructions: list[Instruction]) -> None:
    problems = dashboard_build_problems(instructions)
    assert problems == [], _problems(problems)


def test_dockerfile_runtime(instructions: list[Instruction]) -> None:
    assert runtime_problems(instructions) == [], _problems(runtime_problems(instructions))


def test_healthcheck_files_are_in_the_image(
    compose: Compose, instructions: list[Instruction]
) -> None:
    problems = healthcheck_file_problems(compose, instructions)
    assert problems == [], _problems(problems)


# --- tests: the checkers catch what they are for -----------------------------------------------


@contextlib.contextmanager
def modified(compose: Compose) -> Iterator[Compose]:
    yield copy.deepcopy(compose)


def test_checker_rejects_a_misspelt_option(compose: Compose) -> None:
    assert command_problem(["proxy", "--workers", "2"]) is None
    assert command_problem(["consumer", "--drain"]) is None
    assert command_problem(["replay", "--since", "6h"]) is None
    for command in (["proxy", "--wrokers", "2"], ["api", "--port", "1"], ["migrate", "--now"]):
        assert "unrecognized arguments" in (command_problem(command) or ""), command
    assert "invalid choice" in (command_problem(["prxy"]) or "")
    assert "invalid choice" in (command_problem(["scheduler", "--run-once", "nope"]) or "")
    with modified(compose) as bad:
        bad["services"]["proxy"]["command"] = ["proxy", "--wrokers", "2"]
        assert any("--wrokers" in p for p in command_problems(bad)), command_problems(bad)


def test_checker_rejects_a_misspelt_setting(
    compose: Compose, env_example: EnvFile, readme: str
) -> None:
    documented = documented_settings(readme)
    assert "LECTR_OPENAI_BASE_URL" in documented and "LECTR_SMTP_FROM" in documented
    with modified(compose) as bad:
        bad["services"]["api"]["environment"]["LECTR_DASHBORD_URL"] = "http://localhost:8081"
        problems = undocumented_settings(bad, env_example, documented, "")
        assert [p for p in problems if p.startswith("LECTR_DASHBORD_URL")], problems


def test_checker_rejects_a_bad_setting_value(compose: Compose, env_example: EnvFile) -> None:
    with modified(compose) as bad:
        bad["services"]["scheduler"]["environment"]["LECTR_SMTP_URL"] = "mailpit:1025"
        assert any("LECTR_SMTP_URL" in p for p in settings_problems(bad, env_example))


def test_checker_rejects_a_dangling_dependency(compose: Compose) -> None:
    with modified(compose) as bad:
        bad["services"]["consumer"]["depends_on"]["rabbit"] = {"condition": "service_healthy"}
        assert any("'rabbit'" in p for p in dependency_problems(bad)), dependency_problems(bad)
    with modified(compose) as bad:
        del bad["services"]["api"]["depends_on"]["migrate"]
        assert any("service api must depend on migrate" in p for p in dependency_problems(bad))


def test_checker_rejects_an_unscalable_service(compose: Compose) -> None:
    with modified(compose) as bad:
        bad["services"]["proxy"]["ports"] = ["8080:8080"]
        bad["services"]["consumer"]["container_name"] = "lectr-consumer"
        problems = scaling_problems(bad, {"proxy", "consumer"})
        assert len(problems) == 2, problems
        assert "proxy" not in scalable_services(bad)


def test_checker_rejects_missing_healthchecks_and_short_grace(
    compose: Compose, env_example: EnvFile
) -> None:
    with modified(compose) as bad:
        del bad["services"]["redis"]["healthcheck"]
        bad["services"]["consumer"]["healthcheck"]["test"] = ["CMD", "true"]
        del bad["services"]["proxy"]["stop_grace_period"]
        assert len(healthcheck_problems(bad)) == 2, healthcheck_problems(bad)
        assert any("redis healthy" in p for p in dependency_problems(bad))
        assert any("service proxy" in p for p in stop_grace_problems(bad, env_example))


def test_checker_rejects_an_undefined_interpolation(env_example: EnvFile) -> None:
    document = {"x": ["${POSTGRES_PASSWORD:?set it} $${NOT_INTERPOLATED}", "${REDIS_PASSWORD}"]}
    assert interpolation_problems(document, env_example) == [
        "docker-compose.yml uses ${REDIS_PASSWORD}, which .env.example does not define"
    ]


def test_checker_rejects_bad_readme_commands(compose: Compose) -> None:
    scalable = scalable_services(compose)
    assert {"proxy", "consumer", "scheduler"} <= scalable
    good = "docker compose -f compose/docker-compose.yml up --scale proxy=3 --scale consumer=4"
    assert readme_compose_problems(good, compose, scalable) == []
    for line in (
        "docker compose up",  # no -f: compose/ is not the working directory
        "docker compose -f compose/compose.yaml up",
        "docker compose -f compose/docker-compose.yml up --scale proxies=3",
        "docker compose -f compose/docker-compose.yml up --scale migrate=2",
        "docker compose -f compose/docker-compose.yml run --rm migrations",
    ):
        assert readme_compose_problems(line, compose, scalable), line
    assert readme_compose_problems("no compose here", compose, scalable)


def test_checker_rejects_a_bad_dockerfile() -> None:
    bad = dockerfile_instructions(
        "FROM python:3.11-slim\n"
        "COPY pyproject.toml ./\n"
        "COPY no_such_dir ./x\n"
        "COPY .venv /venv\n"
        "RUN pip install -e '.[test]' \\\n    && true\n"
        'ENTRYPOINT ["python", "-m", "lectr"]\n'
    )
    assert any("no_such_dir" in p for p in copy_source_problems(bad))
    assert any(".venv" in p for p in copy_source_problems(bad))
    install = python_install_problems(bad)
    assert any("not editable" in p for p in install) and any("lectr" in p for p in install)
    assert len(runtime_problems(bad)) == 2, runtime_problems(bad)
    assert dashboard_build_problems(bad)


# --- the health-check script --------------------------------------------------------------------


def _healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_consumer_healthcheck_reads_established_connections(tmp_path: Path) -> None:
    """The consumer's check is real: healthy only with an established broker connection."""
    healthcheck = _healthcheck_module()
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:1628 00000000:0000 0A 00000000:00000000\n"  # listening on 5672
        "   1: 0200120A:C350 0300120A:1538 01 00000000:00000000\n"  # established to 5432
    )
    assert healthcheck.established_remote_ports(table.read_text().splitlines()) == {5432}
    assert healthcheck.connected([5432], [table, tmp_path / "missing"]) is None
    assert "5672" in healthcheck.connected([5672], [table])
    assert healthcheck.main(["connected", "not-a-port"]) == 1


# --- with Docker's own validator, when this machine has it --------------------------------------


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    """``docker compose config -q`` (no daemon needed) accepts the file, with the example
    settings and the secrets filled in."""
    if not _docker_compose_works():
        pytest.skip("`docker compose` is not available on this machine")
    shutil.copytree(COMPOSE_DIR, tmp_path / "compose")
    example = ENV_EXAMPLE.read_text()
    filled = re.sub(r"^([A-Z_]+)=$", rf"\1={SECRET_PLACEHOLDER}", example, flags=re.M)
    (tmp_path / "compose" / ".env").write_text(filled)
    done = subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(tmp_path / "compose" / "docker-compose.yml"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
