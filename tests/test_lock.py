"""The hash locks (`make lock`): every pin of requirements*.txt, every package with its sha256, torch's CPU build.

``make setup`` installs ``requirements-torch.lock`` then ``requirements-dev.lock``, the Docker image
``requirements-torch.lock`` then ``requirements.lock``, the Space ``requirements.lock`` (staged as its
``requirements.txt``), all with ``--require-hashes``; these tests hold the files to what those installs need.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO_ROOT

ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)==(?P<version>\S+)(?: \\)?$")
HASH = re.compile(r"^    --hash=sha256:[0-9a-f]{64}(?: \\)?$")


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [hash lines])}; fails on any line that is neither an entry, a hash nor a comment."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = ENTRY.match(line)
        if entry:
            current = canonicalize_name(entry["name"])
            assert current not in entries, f"{path.name}:{number}: {current} twice"
            entries[current] = (entry["version"], [])
        elif HASH.match(line) and current is not None:
            entries[current][1].append(line.strip().rstrip(" \\"))
        else:
            pytest.fail(f"{path.name}:{number}: not a pinned entry or its hash: {line!r}")
    return entries


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


RUNTIME = read_lock(REPO_ROOT / "requirements.lock")
DEVELOPMENT = read_lock(REPO_ROOT / "requirements-dev.lock")
TORCH = read_lock(REPO_ROOT / "requirements-torch.lock")


@pytest.mark.parametrize(
    ("lock", "inputs"),
    [
        (RUNTIME, ["requirements.txt"]),
        (DEVELOPMENT, ["requirements.txt", "requirements-dev.txt", "requirements-scale.txt"]),
    ],
    ids=["requirements.lock", "requirements-dev.lock"],
)
def test_each_lock_holds_every_pin_of_its_inputs_and_a_hash_for_every_package(lock, inputs) -> None:
    for name in inputs:
        for package, version in read_pins(REPO_ROOT / name).items():
            assert package in lock, f"{name} pins {package}=={version}; the lock lacks it: run `make lock`"
            locked = lock[package][0]
            # torch is the CPU build: the same release with PyTorch's local version label.
            expected = f"{version}+cpu" if package == "torch" else version
            assert locked == expected, f"{name} pins {package}=={version}, the lock has {locked}: run `make lock`"
    unhashed = sorted(package for package, (_, hashes) in lock.items() if not hashes)
    assert not unhashed, f"entries without --hash: {unhashed}"


def test_the_locks_agree_and_the_runtime_lock_stays_without_dev_and_scale_packages() -> None:
    for package, (version, hashes) in RUNTIME.items():
        assert DEVELOPMENT[package][0] == version, package
        assert set(hashes) <= set(DEVELOPMENT[package][1]), package
    for extra in ("pytest", "ruff", "ray", "uv", "selenium"):
        assert extra in DEVELOPMENT
        assert extra not in RUNTIME, f"{extra} must not reach the Space or the Docker image"


def test_the_torch_lock_is_the_cpu_build_alone_with_the_runtime_locks_hash() -> None:
    assert list(TORCH) == ["torch"]
    assert TORCH["torch"] == RUNTIME["torch"]
    assert TORCH["torch"][0].endswith("+cpu")


def test_setup_the_image_and_ci_install_from_the_locks_with_hashes() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    setup = makefile.split("\n$(STAMP):", 1)[1].split("\n\n", 1)[0]
    installs = [line for line in setup.replace("\\\n", " ").splitlines() if re.search(r"pip install.*\s-r\s", line)]
    assert [re.search(r"\s-r\s+(\S+)", line)[1] for line in installs] == [
        "requirements-torch.lock",
        "requirements-dev.lock",
    ]
    assert all("--require-hashes" in line for line in installs)
    assert "make lock" in (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()[1]
    assert "make setup" in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
