"""The quick start on a fresh machine: `tweet-classifier fetch` (run by `make demo`) gets the data and the base
model when the mirrors are absent, from loopback stand-ins here, and stops at once without a network."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import BASE_MODEL_ID, REPO_ROOT, SHARED_DIR, shared_data_path
from tests.hub_stub import HubStub, connect_hub_client
from tests.serving_helpers import free_port
from tweet_classifier import cli
from tweet_classifier.data import fetch

AIRLINE = "twitter-airline-sentiment/Tweets.csv"
CONFIG = str(REPO_ROOT / "configs" / "airline.yaml")
BASE_MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class FileServer:
    """Serves ``content`` at every path on loopback and counts the requests (a stand-in for the data host)."""

    def __init__(self, content: bytes) -> None:
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{AIRLINE}"


@pytest.fixture
def data_server(monkeypatch) -> Iterator[FileServer]:
    served = FileServer(shared_data_path(AIRLINE).read_bytes())
    monkeypatch.setitem(fetch.PINNED_FILES, AIRLINE, fetch.PinnedFile(served.url, fetch.PINNED_FILES[AIRLINE].sha256))
    yield served
    served.server.shutdown()


@pytest.fixture
def hub_with_base_model(tmp_path, monkeypatch) -> Iterator[HubStub]:
    """The stand-in Hub holding the base model's small files, the client pointed at it with an empty cache."""
    with HubStub() as stub:
        connect_hub_client(stub, monkeypatch, tmp_path / "hf-cache")
        from huggingface_hub import CommitOperationAdd, HfApi, snapshot_download

        mirror = Path(snapshot_download(BASE_MODEL_ID, cache_dir=str(SHARED_DIR / "hf-hub"), local_files_only=True))
        api = HfApi(endpoint=stub.endpoint)
        api.create_repo(BASE_MODEL_ID)
        operations = [CommitOperationAdd(name, str(mirror / name)) for name in BASE_MODEL_FILES]
        api.create_commit(BASE_MODEL_ID, operations, commit_message="base model")
        yield stub


def test_a_fresh_machine_with_a_network_gets_the_data_and_the_base_model(
    data_server, hub_with_base_model, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["fetch", "--config", CONFIG]) == 0
    csv = tmp_path / "data" / AIRLINE
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == fetch.PINNED_FILES[AIRLINE].sha256
    cached = list((tmp_path / "hf-cache").glob("models--sentence-transformers--all-MiniLM-L6-v2/snapshots/*/vocab.txt"))
    assert cached
    assert not list(csv.parent.glob(".Tweets.csv.*")), "no temporary file is left behind"
    # Everything is there now: a second run (the next `make demo`) fetches nothing.
    requests, hub_requests = data_server.requests, len(hub_with_base_model.requests)
    assert cli.main(["fetch", "--config", CONFIG]) == 0
    assert data_server.requests == requests
    assert len(hub_with_base_model.requests) == hub_requests


def test_a_download_that_does_not_match_the_pin_is_refused(tmp_path, monkeypatch) -> None:
    served = FileServer(b"tweet_id,text\n1,tampered\n")
    monkeypatch.setitem(fetch.PINNED_FILES, AIRLINE, fetch.PinnedFile(served.url, fetch.PINNED_FILES[AIRLINE].sha256))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    config = fetch.load_config([CONFIG])
    with pytest.raises(fetch.FetchError, match=r"does not have the pinned sha256 .*nothing was written"):
        fetch.ensure_data(config)
    assert not list((tmp_path / "data").rglob("*.csv*"))
    served.server.shutdown()
    (tmp_path / "data" / AIRLINE).write_text("tweet_id,text\n", encoding="utf-8")
    with pytest.raises(fetch.FetchError, match=r"differs from the pinned file .*delete it"):
        fetch.ensure_data(config)


def test_unpinned_missing_data_and_an_offline_cache_say_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    config = fetch.load_config([CONFIG], ["data.source=elsewhere/tweets.csv"])
    with pytest.raises(fetch.FetchError, match="has no pinned download: set DATA_DIR or on a machine with internet"):
        fetch.ensure_data(config)
    assert fetch.ensure_data(fetch.load_config([CONFIG], [f"data.source={tmp_path}/abs.csv"])) is None
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(fetch.FetchError, match="HF_HUB_OFFLINE=1 is set: unset HF_HUB_OFFLINE"):
        fetch.ensure_base_model(config)
    assert fetch.ensure_base_model(fetch.load_config([CONFIG], ["train.tiny_model=true"])) is None


def test_no_mirror_and_no_network_stops_in_seconds_with_one_line(tmp_path) -> None:
    """The real command in a fresh process: the data host and the Hub are a closed loopback port."""
    closed = f"http://127.0.0.1:{free_port()}"
    code = (
        "import sys\nfrom tweet_classifier import cli\nfrom tweet_classifier.data import fetch\n"
        f"fetch.PINNED_FILES[{AIRLINE!r}] = fetch.PinnedFile({closed!r} + '/Tweets.csv', 'x')\n"
        f"sys.exit(cli.main(['fetch', '--config', {CONFIG!r}]))\n"
    )
    removed = ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "DATA_DIR")
    environment = {key: value for key, value in os.environ.items() if key not in removed}
    environment |= {"DATA_DIR": str(tmp_path / "data"), "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": closed}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "could not be downloaded" in lines[0]
    assert "run `scripts/fetch_shared.sh DIR`" in lines[0]
    assert elapsed < 30, elapsed


def _make_env(shared: Path, tmp_path: Path) -> dict[str, str]:
    """What `make` exports to its commands, read by a stand-in CLI that prints its environment."""
    printer = tmp_path / "print_env.py"
    printer.write_text("import json, os\nprint(json.dumps(dict(os.environ)))\n", encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "DATA_DIR")}
    environment.pop("HF_HUB_CACHE", None)
    completed = subprocess.run(
        ["make", "-s", "fetch", f"SHARED={shared}", f"CLI={sys.executable} {printer}"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_make_uses_the_mirrors_offline_only_when_they_exist(tmp_path) -> None:
    with_mirror = _make_env(SHARED_DIR, tmp_path)
    assert with_mirror["HF_HUB_OFFLINE"] == "1"
    assert with_mirror["DATA_DIR"] == str(SHARED_DIR / "datasets")
    fresh = _make_env(tmp_path / "no-shared", tmp_path)
    assert "HF_HUB_OFFLINE" not in fresh
    assert "HF_HUB_CACHE" not in fresh
    assert fresh["DATA_DIR"] == str(REPO_ROOT / "data")
