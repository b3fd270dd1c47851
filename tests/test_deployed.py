"""The app where users meet it: the staged Space and the Docker image's commands, away from the training data.

Each test builds what the deployment builds and nothing more: ``deploy-space --dry-run`` stages the Space,
a fresh virtualenv gets only the staged ``requirements.txt`` (the runtime lock under ``--require-hashes``;
the package index as configured on this machine; the staged file's PyTorch CPU index is unreachable here
and skipped) and must end up with exactly the lock's versions, a trained tiny model is
pushed to the loopback Hub stand-in, and the staged ``app.py`` (or the image's ``CMD``) starts with
``MODEL_ID``/``MODEL_REVISION`` at the stand-in, an empty Hugging Face cache and no ``DATA_DIR``. It must
answer ``/healthz``, show a canary macro-F1 equal to the card's test macro-F1 and a loaded drift reference,
and classify through ``gradio_client`` run from that virtualenv.

One virtualenv per session serves both tests (the image installs the same pins); the Docker test installs
the package into it last and removes it again, so the Space test always sees a venv without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from tests.conftest import REPO_ROOT
from tests.hub_stub import HubStub, connect_hub_client
from tests.serving_helpers import free_port
from tests.test_deploy import _index_for_torch, dockerfile_instructions
from tests.test_lock import RUNTIME
from tests.training_helpers import FAST_OVERRIDES, LABELS, SMOKE_CONFIG, write_synthetic_config

MODEL_REPO = "tweet-org/deployed-tiny"
# The staged requirements.txt names PyTorch's CPU index, which this machine cannot reach: fail over at once.
PIP_ENV = {"PIP_RETRIES": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
CLIENT_SCRIPT = """
import json, sys
from gradio_client import Client
client = Client(sys.argv[1], verbose=False)
print(json.dumps(client.predict("@united thanks, the crew was great!", api_name="/predict")))
"""


@pytest.fixture(scope="module")
def pushed_model(tmp_path_factory) -> Iterator[tuple[HubStub, str, dict]]:
    """A tiny model trained by the real entry point, pushed to a stand-in Hub: (stub, commit sha, metrics)."""
    from tweet_classifier import cli

    work = tmp_path_factory.mktemp("deployed-model")
    config = write_synthetic_config(work / "data")
    overrides = [*FAST_OVERRIDES, "train.max_steps=40", "train.eval_steps=20"]
    model_dir = work / "model"
    arguments = ["train", "--config", str(config), "--config", str(SMOKE_CONFIG), "--output-dir", str(model_dir)]
    assert cli.main([*arguments, *[item for override in overrides for item in ("--set", override)]]) == 0
    with HubStub() as stub, pytest.MonkeyPatch.context() as patch:
        connect_hub_client(stub, patch, work / "push-cache")
        from tweet_classifier.hub.publish import push_model_folder

        result = push_model_folder(model_dir, MODEL_REPO)
        patch.undo()
        metrics = json.loads(stub.files_at(MODEL_REPO, result.commit_sha)["metrics.json"])
        yield stub, result.commit_sha, metrics


@pytest.fixture(scope="module")
def staged_space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "staged"
    completed = subprocess.run(
        [sys.executable, "-m", "tweet_classifier", "deploy-space", "--space-id", "me/demo", "--dry-run", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return out


@pytest.fixture(scope="module")
def deployed_venv(tmp_path_factory, staged_space) -> Path:
    """A fresh virtualenv with exactly the staged requirements.txt installed (what the Space's build does)."""
    venv = tmp_path_factory.mktemp("deployed-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
        cwd=staged_space,
        env={**os.environ, **PIP_ENV},
        check=True,
        timeout=1500,
    )
    assert "--require-hashes" in (staged_space / "requirements.txt").read_text(encoding="utf-8").splitlines()
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout
    installed = {
        canonicalize_name(name): version for name, _, version in (line.partition("==") for line in frozen.split())
    }
    locked = {package: version for package, (version, _) in RUNTIME.items()}
    assert {package: installed.get(package) for package in locked} == locked
    return venv


def deployment_env(tmp_path: Path, stub: HubStub, port: int, **extra: str) -> dict[str, str]:
    """What a Space or a container has: no DATA_DIR, no mirror, no token; HF_ENDPOINT at the stand-in."""
    removed = ("DATA_DIR", "HF_HUB_CACHE", "HF_HOME", "HF_TOKEN", "HF_HUB_OFFLINE", "PYTHONPATH", "VIRTUAL_ENV")
    environment = {key: value for key, value in os.environ.items() if key not in removed}
    return environment | {
        "HF_HOME": str(tmp_path / "empty-hf-home"),
        "HF_ENDPOINT": stub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "FEEDBACK_FILE": str(tmp_path / "feedback.jsonl"),
        **extra,
    }


def check_served_app(
    command: list[str], cwd: Path, environment: dict[str, str], venv: Path, metrics: dict, card: str
) -> dict:
    """Start the app, wait for /healthz and the canary, classify through gradio_client; returns /v1/metrics."""
    base_url = f"http://127.0.0.1:{environment['GRADIO_SERVER_PORT']}"
    server = subprocess.Popen(command, cwd=cwd, env=environment)
    try:
        deadline = time.monotonic() + 300
        live: dict = {}
        while time.monotonic() < deadline:
            assert server.poll() is None, "the app exited before it became healthy"
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    live = httpx.get(f"{base_url}/v1/metrics", timeout=5).json()
                    if live["live_f1"]["canary"]["status"].startswith(("done", "failed", "unavailable")):
                        break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        canary = live["live_f1"]["canary"]
        assert canary["status"].startswith("done"), canary
        assert canary["n"] == canary["total"] == metrics["test"]["n"]
        # Same rows, same code: the live number is the card's.
        assert canary["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"], abs=1e-12)
        assert f"value: {round(canary['macro_f1'], 4)}" in card
        assert live["drift"]["reference"]["n"] > 0
        client = subprocess.run(
            [str(venv / "bin" / "python"), "-c", CLIENT_SCRIPT, base_url + "/"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        assert json.loads(client.stdout.strip().splitlines()[-1])["label"] in LABELS
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    # uvicorn finishes in-flight requests, then re-raises SIGTERM so the exit status says why it stopped.
    assert server.returncode in (0, -signal.SIGTERM)
    return live


@pytest.mark.slow
def test_the_staged_space_serves_a_hub_model_with_live_f1_and_drift(
    staged_space, deployed_venv, pushed_model, tmp_path
) -> None:
    stub, sha, metrics = pushed_model
    shown = subprocess.run(
        [str(deployed_venv / "bin" / "python"), "-m", "pip", "show", "tweet-classifier"],
        capture_output=True,
        check=False,
    )
    assert shown.returncode != 0, "the Space's venv must not have the package installed"
    environment = deployment_env(tmp_path, stub, free_port(), MODEL_ID=MODEL_REPO, MODEL_REVISION=sha)
    card = stub.files_at(MODEL_REPO, sha)["README.md"].decode()
    live = check_served_app(
        [str(deployed_venv / "bin" / "python"), "app.py"], staged_space, environment, deployed_venv, metrics, card
    )
    assert live["model_version"] == f"{MODEL_REPO}@{sha[:12]}"
    assert list((tmp_path / "empty-hf-home").rglob("canary.jsonl")), "the canary rows came from the Hub download"


def _docker_build_arguments(stub: HubStub, sha: str) -> dict[str, str]:
    return {"TORCH_INDEX_URL": _index_for_torch(), "MODEL_ID": MODEL_REPO, "MODEL_REVISION": sha}


@pytest.mark.slow
def test_the_docker_image_commands_serve_a_hub_model_with_live_f1_and_drift(
    deployed_venv, pushed_model, tmp_path
) -> None:
    """The image's COPY, pip and model-baking RUN steps and its CMD, in the shared venv; no DATA_DIR."""
    stub, sha, metrics = pushed_model
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    instructions = dockerfile_instructions()
    for keyword, args in instructions:
        if keyword == "COPY":
            parts = [part for part in args.split() if not part.startswith("--")]
            for source in parts[:-1]:
                origin = REPO_ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, app_dir / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(origin, app_dir / source)
    build_arguments = _docker_build_arguments(stub, sha)
    environment = deployment_env(tmp_path, stub, free_port(), **build_arguments)
    environment["PATH"] = f"{deployed_venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    python = deployed_venv / "bin" / "python"
    try:
        for keyword, args in instructions:
            if keyword != "RUN":
                continue
            if args.startswith("pip "):
                command = re.sub(r"\$\{(\w+)\}", lambda match: build_arguments[match.group(1)], args)
                subprocess.run(
                    f"{python} -m {command}", shell=True, cwd=app_dir, env={**environment, **PIP_ENV}, check=True
                )
            elif "hf download" in args:
                # The model-baking step, without its BuildKit secret mount (a public model needs no token).
                script = args.split(" ", 1)[1] if args.startswith("--mount") else args
                subprocess.run(["bash", "-c", script], cwd=app_dir, env=environment, check=True, timeout=300)
        baked = list((tmp_path / "empty-hf-home").rglob("reference.json"))
        assert baked, "the image's build step bakes the model (with its drift reference) into the HF cache"
        cmd = json.loads(next(args for keyword, args in instructions if keyword == "CMD"))
        card = stub.files_at(MODEL_REPO, sha)["README.md"].decode()
        check_served_app([str(python), *cmd[1:]], app_dir, environment, deployed_venv, metrics, card)
    finally:
        subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", "tweet-classifier"], check=False)
