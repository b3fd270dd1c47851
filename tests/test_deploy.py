"""Deployment files: the Space card, the Dockerfile and the GitHub workflows.

No Docker engine or GitHub runner exists here, so these tests lint the files with the real linters,
check the promises each file makes; ``tests/test_deployed.py`` (slow) runs the image's own install, bake
and start commands, and the staged Space, in a fresh virtualenv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def space_card() -> dict:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, "README.md must start with a YAML front matter block (the Space card)"
    return yaml.safe_load(match.group(1))


def test_hadolint_passes_without_warnings():
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_passes():
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BIN / "actionlint")], cwd=REPO_ROOT, capture_output=True, text=True, env=environment, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_dependencies_before_copying_the_source():
    instructions = dockerfile_instructions()
    copies = [(index, args) for index, (keyword, args) in enumerate(instructions) if keyword == "COPY"]
    source_copy = next(index for index, args in copies if "src/" in args)
    for lock in ("requirements-torch.lock", "requirements.lock"):
        lock_copy = next(index for index, args in copies if lock in args)
        install = next(
            index
            for index, (keyword, args) in enumerate(instructions)
            if keyword == "RUN" and "--require-hashes" in args and f"-r {lock}" in args
        )
        assert lock_copy < install < source_copy


def test_dockerfile_runs_as_uid_1000_with_healthcheck_port_and_stop_signal():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0][0] == "FROM"
    assert "slim" in instructions[0][1]
    assert ("USER", "1000") in instructions
    assert any(keyword == "RUN" and "--uid 1000" in args for keyword, args in instructions)
    assert ("EXPOSE", "7860") in instructions
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    healthcheck = next(args for keyword, args in instructions if keyword == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    # Everything after USER runs unprivileged, the app included.
    assert keywords.index("USER") < keywords.index("CMD")
    assert instructions[-1] == ("CMD", '["python", "app.py"]')


def test_dockerfile_keeps_secrets_out_of_layers():
    for keyword, args in dockerfile_instructions():
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"TOKEN|API_KEY|SECRET|PASSWORD", args, flags=re.IGNORECASE), args
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "--mount=type=secret,id=hf_token" in text


def test_dockerfile_copies_only_files_that_exist_and_the_build_context_excludes_heavy_folders():
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            sources = [part for part in args.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"COPY source {source} is missing"
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for heavy in (".venv", "models", "outputs", "data", "wandb", ".git"):
        assert heavy in ignored


def test_workflows_pin_actions_by_sha_and_grant_least_privilege():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {path.name for path in files} == {"ci.yml", "retrain.yml", "deploy.yml"}
    for path in files:
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert SHA_PINNED.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned by SHA"
                # Secrets reach commands only through env, never pasted into the script text.
                assert "secrets." not in step.get("run", ""), f"{path.name}: secret used inside run"


def test_workflows_use_the_same_make_targets_as_developers():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))
    for path in WORKFLOWS.glob("*.yml"):
        for target in re.findall(r"\bmake ([\w-]+)", path.read_text(encoding="utf-8")):
            assert target in targets, f"{path.name} runs `make {target}`, which the Makefile lacks"


def test_retrain_workflow_is_scheduled_and_reads_secrets_from_secrets():
    workflow = yaml.safe_load((WORKFLOWS / "retrain.yml").read_text(encoding="utf-8"))
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert "schedule" in triggers
    assert "workflow_dispatch" in triggers
    text = (WORKFLOWS / "retrain.yml").read_text(encoding="utf-8")
    assert "HF_TOKEN: ${{ secrets.HF_TOKEN }}" in text
    assert "WANDB_API_KEY: ${{ secrets.WANDB_API_KEY }}" in text
    assert "scripts/retrain.sh" in text


def test_space_card_front_matter_matches_the_app():
    card = space_card()
    assert card["sdk"] == "gradio"
    assert card["sdk_version"] == version("gradio")
    requirements = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert f"gradio=={card['sdk_version']}" in requirements
    assert (REPO_ROOT / card["app_file"]).is_file()
    assert str(card["python_version"]) == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert card["models"]
    assert card["preload_from_hub"] == card["models"]


def _index_for_torch() -> str:
    """The index a build would reach as TORCH_INDEX_URL; here, the machine's own configured index."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"],
        capture_output=True,
        text=True,
        check=False,
    )
    configured = result.stdout.split()
    return configured[0] if result.returncode == 0 and configured else "https://pypi.org/simple"


def test_the_readme_shows_the_commands_these_tests_run() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    space = readme.split("### Deploy your own Space", 1)[1].split("\n### ", 1)[0]
    for command in (
        "tweet-classifier deploy-space --space-id",
        "--dry-run",
        "python -m venv",
        "pip install -r requirements.txt",
        "MODEL_ID=",
        "python app.py",
    ):
        assert command in space, command
    docker = readme.split("### Run with Docker", 1)[1].split("\n### ", 1)[0]
    assert "docker build" in docker
    assert "docker run" in docker
    card = yaml.safe_load(readme.split("---\n", 2)[1])
    assert card["models"]


def test_pre_commit_runs_every_lint_tool_of_make_lint_and_guards_size_and_secrets():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    tools = {
        word.removeprefix("$(BIN)/")
        for line in recipe.splitlines()[1:]
        for word in line.split()
        if word.startswith("$(BIN)/")
    }
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    entries = " ".join(hook["entry"] for hook in hooks)
    assert tools == {"ruff", "lint-imports", "hadolint", "actionlint", "shellcheck"}
    for tool in tools:
        assert f".venv/bin/{tool}" in entries, f"make lint runs {tool}; .pre-commit-config.yaml does not"
    assert "ruff format --check" in entries
    assert "ruff check" in entries
    ids = {hook["id"] for hook in hooks}
    assert {"check-added-large-files", "detect-secrets"} <= ids
    assert all("==" in dependency for hook in hooks for dependency in hook.get("additional_dependencies", []))
