"""The layer contract (import-linter, ``[tool.importlinter]`` in pyproject.toml) holds, and would catch a
new upward import: ``make lint`` runs the same ``lint-imports``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts, analysing the package found under ``source_root``."""
    environment = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def test_the_package_keeps_its_layers() -> None:
    completed = lint_imports(REPO_ROOT / "src")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 broken" in completed.stdout


def test_an_upward_import_breaks_the_contract_and_names_the_module(tmp_path) -> None:
    package = tmp_path / "tweet_classifier"
    shutil.copytree(REPO_ROOT / "src" / "tweet_classifier", package, ignore=shutil.ignore_patterns("__pycache__"))
    readers = package / "data" / "readers.py"
    readers.write_text(readers.read_text(encoding="utf-8") + "\nfrom tweet_classifier.serving import ui  # upward\n")
    completed = lint_imports(tmp_path)
    assert completed.returncode != 0
    assert "tweet_classifier.data.readers -> tweet_classifier.serving.ui" in completed.stdout
