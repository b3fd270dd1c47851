"""Publishing: allow-listed atomic pushes, retries, token hygiene and loading back, against a loopback Hub stub."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import REPO_ROOT
from tests.hub_stub import CANARY_TOKEN, HubStub, connect_hub_client
from tweet_classifier import cli
from tweet_classifier.config import HubConfig, load_config
from tweet_classifier.hub import publish as hub
from tweet_classifier.inference.portable import write_portable_pipeline
from tweet_classifier.metrics import classification_report_dict

# huggingface_hub's own LFS upload passes a file object as data=, which httpx2 flags; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

REPO_ID = "tweet-org/minilm-airline"
FAST_RETRIES = ["--set", "hub.retry_base_delay_s=0.001", "--set", "hub.max_retries=3"]
PUBLISHED = [
    "README.md",
    "benchmark.json",
    "cleaning_report.json",
    "cleaning_report.md",
    "config.json",
    "hf_pipeline.py",
    "metrics.json",
    "model.safetensors",
    "onnx/cascade.json",
    "onnx/model-cascade.onnx",
    "onnx/model-int8.onnx",
    "onnx/model.onnx",
    "onnx/parity.json",
    "onnx/tokenizer.json",
    "run_config.yaml",
    "text.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "tweet_classifier.json",
]


def _identity_onnx(path: Path) -> None:
    """A real (tiny) ONNX graph: the hub treats export.py's files as opaque blobs, so any valid one will do."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph), path)


def _metrics() -> dict:
    labels = ["negative", "neutral", "positive"]
    truth = ["negative"] * 6 + ["neutral"] * 3 + ["positive"] * 3
    predicted = ["negative"] * 5 + ["neutral"] + ["neutral"] * 2 + ["negative"] + ["positive"] * 3
    test = classification_report_dict(truth, predicted, labels)
    return {"validation": test, "test": test, "baseline": {"test": {"macro_f1": 0.61}}}


def make_publishable_folder(tiny_model_dir: Path, target: Path) -> Path:
    """The tiny model plus everything training/export/benchmark add, plus the junk that must never be pushed."""
    shutil.copytree(tiny_model_dir, target)
    (target / "metrics.json").write_text(json.dumps(_metrics()), encoding="utf-8")
    config = load_config([REPO_ROOT / "configs/airline.yaml", REPO_ROOT / "configs/smoke.yaml"])
    (target / "run_config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    (target / "cleaning_report.json").write_text(json.dumps({"rows_in": 400, "rows_out": 371}), encoding="utf-8")
    (target / "cleaning_report.md").write_text("# Cleaning report\n\n400 rows in, 371 out.\n", encoding="utf-8")
    (target / "benchmark.json").write_text(json.dumps({"rows": []}), encoding="utf-8")
    _identity_onnx(target / "onnx" / "model.onnx")
    _identity_onnx(target / "onnx" / "model-int8.onnx")
    _identity_onnx(target / "onnx" / "model-cascade.onnx")
    (target / "onnx" / "parity.json").write_text(json.dumps({"agreement": 1.0}), encoding="utf-8")
    (target / "onnx" / "cascade.json").write_text(json.dumps({"margin": 0.5}), encoding="utf-8")
    (target / "onnx" / "tokenizer.json").write_text(json.dumps({"version": "1.0"}), encoding="utf-8")
    # What a training run leaves behind and a push must not publish.
    (target / "checkpoint-6").mkdir()
    (target / "checkpoint-6" / "optimizer.pt").write_bytes(b"optimizer state")
    shutil.copy(target / "model.safetensors", target / "checkpoint-6" / "model.safetensors")
    (target / "training_args.bin").write_bytes(b"pickled TrainingArguments")
    (target / "rng_state.pth").write_bytes(b"rng")
    (target / "wandb").mkdir()
    (target / "wandb" / "debug.log").write_text("local run log", encoding="utf-8")
    # Native code for the exporting machine's CPU: never published (and never fetched).
    (target / "onnx" / "model-bf16.pt2").write_bytes(b"PK compiled shared library")
    (target / "onnx" / "compiled.json").write_text(json.dumps({"torch": "2.13.0"}), encoding="utf-8")
    write_portable_pipeline(target)  # as train and export leave it
    (target / "onnx" / "nested").mkdir()
    (target / "onnx" / "nested" / "other.onnx").write_bytes(b"not on the list")
    return target


@pytest.fixture(autouse=True)
def _keep_caplog_attached(monkeypatch):
    # cli.main reconfigures logging with basicConfig(force=True), which would detach pytest's capture handler.
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)


@pytest.fixture
def model_folder(tiny_model_dir, tmp_path) -> Path:
    return make_publishable_folder(tiny_model_dir, tmp_path / "airline-model")


@pytest.fixture
def hub_stub(monkeypatch, tmp_path):
    with HubStub() as stub:
        yield connect_hub_client(stub, monkeypatch, tmp_path / "hf-cache")


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


def stdout_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def assert_token_only_in_authorization_headers(stub: HubStub) -> None:
    authorized = 0
    for request in stub.requests:
        for name, value in request.headers.items():
            if CANARY_TOKEN in value:
                assert name == "authorization", f"token in header {name} of {request.method} {request.path}"
                authorized += 1
        assert CANARY_TOKEN.encode() not in request.body, f"token in the body of {request.method} {request.path}"
        assert CANARY_TOKEN not in request.path
        assert all(CANARY_TOKEN not in "".join(values) for values in request.query.values())
    assert authorized > 0, "the token was never sent: the test would pass vacuously"


# -- allow-list ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("model.safetensors", True),
        ("onnx/model.onnx", True),
        ("onnx/model-int8.onnx", True),
        ("onnx/model.onnx.data", True),
        ("onnx/parity.json", True),
        ("onnx/cascade.json", True),
        ("onnx/tokenizer.json", True),
        ("onnx/model-cascade.onnx", True),
        ("onnx/nested/other.onnx", False),
        ("reference.json", True),
        ("canary.jsonl", True),
        ("canary.json", True),
        ("onnx/model-bf16.pt2", False),
        ("onnx/compiled.json", False),
        ("checkpoint-6/model.safetensors", False),
        ("checkpoint-6/optimizer.pt", False),
        ("training_args.bin", False),
        ("optimizer.pt", False),
        ("pytorch_model.bin", False),
        ("wandb/debug.log", False),
        ("sub/config.json", False),
    ],
)
def test_model_allow_list(path, allowed):
    assert hub.is_allowed(path, hub.MODEL_ALLOW_LIST) is allowed


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("app.py", True),
        ("tweet_classifier/hub/publish.py", True),
        ("tweet_classifier/sub/deep/x.py", True),
        ("src/tweet_classifier/hub/publish.py", False),
        ("configs/airline.yaml", True),
        ("configs/nested/x.yaml", False),
        ("tests/hub/test_hub.py", False),
        ("src/other_package/x.py", False),
        ("models/airline/model.safetensors", False),
        (".venv/lib/site.py", False),
    ],
)
def test_space_allow_list(path, allowed):
    assert hub.is_allowed(path, hub.SPACE_ALLOW_LIST) is allowed


# -- dry runs ------------------------------------------------------------------------------------------------


def test_push_dry_run_writes_exactly_the_allow_listed_files_without_network(model_folder, tmp_path, capsys, caplog):
    out = tmp_path / "would-push"
    caplog.set_level("INFO")
    # conftest keeps HF_HUB_OFFLINE=1 and no token: a dry run needs neither.
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, "--dry-run", str(out))
    assert code == 0
    listed = stdout_json(capsys)
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == PUBLISHED
    assert listed["files"] == PUBLISHED
    assert listed["commit_sha"] is None
    assert listed["dry_run_dir"] == str(out)
    assert (out / "model.safetensors").read_bytes() == (model_folder / "model.safetensors").read_bytes()
    assert "checkpoint-6/" in caplog.text
    assert "training_args.bin" in caplog.text


def test_push_dry_run_regenerates_the_card_with_the_model_index(model_folder, tmp_path, capsys):
    pytest.importorskip("tweet_classifier.training.card")
    out = tmp_path / "would-push"
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, "--dry-run", str(out)) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    assert "model-index" in card
    assert f"{_metrics()['test']['macro_f1']:.4f}".rstrip("0") in card
    assert not (model_folder / "README.md").exists(), "the model folder itself must not be modified"


def test_push_without_card_module_uses_the_folders_readme(model_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tweet_classifier.training.card", None)  # import fails like an absent module
    (model_folder / "README.md").write_text("---\nlicense: other\n---\n# hand-written card\n", encoding="utf-8")
    files = hub.stage_model_files(model_folder, tmp_path / "staged")
    assert "README.md" in files
    assert (tmp_path / "staged" / "README.md").read_text(encoding="utf-8").endswith("# hand-written card\n")
    (model_folder / "README.md").unlink()
    with pytest.raises(hub.HubError, match="no model card"):
        hub.stage_model_files(model_folder, tmp_path / "staged-again")


def test_dry_run_refuses_a_non_empty_output_folder(model_folder, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, "--dry-run", str(out))
    assert code == 2
    assert (out / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_push_refuses_a_folder_without_metrics(model_folder, tmp_path, caplog):
    (model_folder / "metrics.json").unlink()
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, "--dry-run", str(tmp_path / "o"))
    assert code == 2
    assert "metrics.json missing" in caplog.text


def test_push_refuses_an_invalid_repo_id(model_folder, tmp_path, caplog):
    code = run_cli("push", "--model", str(model_folder), "--repo-id", "no-namespace", "--dry-run", str(tmp_path / "o"))
    assert code == 2
    assert "--repo-id must look like ORG/NAME" in caplog.text


def test_no_command_line_flag_accepts_a_token():
    for command in ("push", "deploy-space"):
        parser = cli.build_command_parser(command)
        assert not any("token" in option for action in parser._actions for option in action.option_strings)
        with pytest.raises(SystemExit):
            parser.parse_args(["--token", CANARY_TOKEN])


def test_secret_scan_stops_a_leaked_token(model_folder, tmp_path, monkeypatch):
    metrics = json.loads((model_folder / "metrics.json").read_text(encoding="utf-8"))
    metrics["note"] = "hf_" + "A" * 34
    (model_folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    with pytest.raises(hub.HubError, match=r"metrics\.json contains what looks like an access token"):
        hub.dry_run_model_folder(model_folder, tmp_path / "out", REPO_ID, "main")
    # The current token is caught even in a binary file, where only the literal value is searched for.
    monkeypatch.setenv("WANDB_API_KEY", "local-wandb-key-0123456789")
    blob = tmp_path / "blob"
    blob.mkdir()
    (blob / "weights.bin").write_bytes(b"\x00\x01local-wandb-key-0123456789\x02")
    with pytest.raises(hub.HubError, match=r"weights\.bin"):
        hub.scan_for_secrets(blob, ["weights.bin"], hub._current_secrets())


# -- pushing to the stub --------------------------------------------------------------------------------------


def test_push_is_one_commit_with_lfs_weights_and_reports_the_sha(model_folder, hub_stub, capsys, caplog):
    caplog.set_level("DEBUG")
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES)
    assert code == 0
    result = stdout_json(capsys)
    head = hub_stub.head(REPO_ID)
    assert result["commit_sha"] == head
    assert result["commit_url"].endswith(f"/{REPO_ID}/commit/{head}")
    stored = hub_stub.files_at(REPO_ID, head)
    assert sorted(stored) == sorted([".gitattributes", *PUBLISHED])
    assert stored["model.safetensors"] == (model_folder / "model.safetensors").read_bytes()
    assert len(hub_stub.requests_matching("POST", f"/api/models/{REPO_ID}/commit/")) == 1
    # Weights and ONNX files travelled through the LFS batch API, not inline in the commit.
    commit_body = hub_stub.requests_matching("POST", "/commit/")[0].body.decode()
    assert '"lfsFile"' in commit_body
    assert '"path": "model.safetensors"' in commit_body
    assert len(hub_stub.requests_matching("PUT", "/lfs-upload/")) == 4  # the weights and three ONNX files
    message = hub_stub.repo(REPO_ID).commits[head].message
    assert message.startswith("Publish airline-model: test macro-F1 ")
    # Token hygiene: only ever in the Authorization header; never in files, card, logs or output.
    assert_token_only_in_authorization_headers(hub_stub)
    assert all(CANARY_TOKEN.encode() not in content for content in stored.values())
    assert CANARY_TOKEN not in caplog.text
    assert CANARY_TOKEN not in json.dumps(result)


def test_push_to_a_branch_creates_it_and_leaves_main_alone(model_folder, hub_stub, capsys):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    main_head = hub_stub.head(REPO_ID)
    capsys.readouterr()
    (model_folder / "benchmark.json").write_text(json.dumps({"rows": [{"backend": "onnx-int8"}]}), encoding="utf-8")
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, "--revision", "challenger") == 0
    result = stdout_json(capsys)
    assert hub_stub.head(REPO_ID) == main_head
    assert hub_stub.head(REPO_ID, "challenger") == result["commit_sha"] != main_head
    assert b"onnx-int8" in hub_stub.files_at(REPO_ID, "challenger")["benchmark.json"]
    assert b"onnx-int8" not in hub_stub.files_at(REPO_ID, "main")["benchmark.json"]


def test_push_deletes_allow_listed_files_the_new_folder_lacks(model_folder, hub_stub, capsys):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    first = stdout_json(capsys)["commit_sha"]
    hub_stub.repo(REPO_ID)  # exists
    (model_folder / "onnx" / "model-int8.onnx").unlink()
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    second = stdout_json(capsys)
    assert second["deleted"] == ["onnx/model-int8.onnx"]
    assert "onnx/model-int8.onnx" not in hub_stub.files_at(REPO_ID, second["commit_sha"])
    assert "onnx/model-int8.onnx" in hub_stub.files_at(REPO_ID, first)


def test_push_keeps_files_it_does_not_manage(model_folder, hub_stub, capsys):
    hub_stub_api = hub._hub_api(hub_stub.endpoint)
    hub_stub_api.create_repo(REPO_ID)
    hub_stub_api.upload_file(path_or_fileobj=b"logo", path_in_repo="assets/logo.png", repo_id=REPO_ID)
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    assert "assets/logo.png" in hub_stub.files_at(REPO_ID, stdout_json(capsys)["commit_sha"])


@pytest.mark.parametrize(
    ("status", "times"),
    [(500, 1), (503, 2), (429, 1), (None, 1)],
    ids=["500-once", "503-twice", "429-once", "dropped-connection"],
)
def test_transient_commit_failures_are_retried(model_folder, hub_stub, capsys, caplog, status, times):
    hub_stub.fail("POST", "/commit/", status=status, times=times)
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES)
    assert code == 0
    assert stdout_json(capsys)["commit_sha"] == hub_stub.head(REPO_ID)
    assert len(hub_stub.requests_matching("POST", "/commit/")) == times + 1
    assert f"retry {times}/3" in caplog.text


def test_a_commit_whose_answer_was_lost_is_found_not_made_twice(model_folder, hub_stub, capsys, caplog):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    before = hub_stub.head(REPO_ID)
    capsys.readouterr()
    (model_folder / "metrics.json").write_text(json.dumps({**_metrics(), "retrained": True}), encoding="utf-8")
    hub_stub.fail("POST", "/commit/", status=None, times=1, after=True)
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES) == 0
    result = stdout_json(capsys)
    head = hub_stub.repo(REPO_ID).commits[hub_stub.head(REPO_ID)]
    assert result["commit_sha"] == head.sha
    assert head.parent == before  # exactly one new commit on top of the previous one
    assert len(hub_stub.requests_matching("POST", "/commit/")) == 2  # the first push and one attempt
    assert json.loads(hub_stub.files_at(REPO_ID)["metrics.json"])["retrained"] is True
    assert "the previous attempt had landed" in caplog.text


def test_every_commit_names_its_parent(model_folder, hub_stub):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    first = hub_stub.head(REPO_ID)
    (model_folder / "metrics.json").write_text(json.dumps({**_metrics(), "retrained": True}), encoding="utf-8")
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    header = json.loads(hub_stub.requests_matching("POST", "/commit/")[-1].body.decode().splitlines()[0])
    assert header["value"]["parentCommit"] == first


def test_a_revision_moved_during_the_push_is_not_clobbered(model_folder, hub_stub, capsys, caplog, monkeypatch):
    from huggingface_hub import HfApi

    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    capsys.readouterr()
    list_files = HfApi.list_repo_files

    def list_then_someone_commits(self, *args, **kwargs):
        files = list_files(self, *args, **kwargs)
        other = hub._hub_api(hub_stub.endpoint)
        other.upload_file(path_or_fileobj=b"theirs", path_in_repo="notes.txt", repo_id=REPO_ID)
        return files

    monkeypatch.setattr(HfApi, "list_repo_files", list_then_someone_commits)
    (model_folder / "metrics.json").write_text(json.dumps({**_metrics(), "retrained": True}), encoding="utf-8")
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES)
    assert code == 2
    assert hub_stub.files_at(REPO_ID)["notes.txt"] == b"theirs"  # the other writer's commit is still the head
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert any("HTTP 412" in message and "rerun the push" in message for message in errors)


def test_a_retry_after_someone_else_committed_stops_with_nothing_changed(model_folder, hub_stub, monkeypatch):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    api = hub._hub_api(hub_stub.endpoint)
    parent = hub_stub.head(REPO_ID)
    api.upload_file(path_or_fileobj=b"theirs", path_in_repo="notes.txt", repo_id=REPO_ID)
    with pytest.raises(hub.HubError, match=r"moved to .* while this push was in flight"):
        hub._landed_commit(api, REPO_ID, "model", "main", parent, "a title nobody used")
    assert hub._landed_commit(api, REPO_ID, "model", "main", hub_stub.head(REPO_ID), "x") is None


def test_transient_failure_on_repo_creation_is_retried(model_folder, hub_stub, capsys):
    hub_stub.fail("POST", "/api/repos/create", status=502, times=1)
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES) == 0
    assert len(hub_stub.requests_matching("POST", "/api/repos/create")) == 2


def test_permanent_failure_exits_1_and_leaves_the_previous_revision(model_folder, hub_stub, capsys, caplog):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    previous = hub_stub.head(REPO_ID)
    previous_files = hub_stub.files_at(REPO_ID, previous)
    capsys.readouterr()
    (model_folder / "metrics.json").write_text(json.dumps({**_metrics(), "retrained": True}), encoding="utf-8")
    hub_stub.fail("POST", "/commit/", status=500, times=None)
    caplog.clear()
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES)
    assert code == 1
    assert capsys.readouterr().out == ""
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert "\n" not in errors[0].getMessage()
    assert "commit failed 4 times (HTTP 500" in errors[0].getMessage()
    assert hub_stub.head(REPO_ID) == previous
    assert hub_stub.files_at(REPO_ID, "main") == previous_files
    assert len(hub_stub.requests_matching("POST", "/commit/")) == 1 + 4


def test_rejected_token_is_a_user_error_without_retries(model_folder, hub_stub, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "wrongTOKEN0123456789abcdefghijkl")
    code = run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID, *FAST_RETRIES)
    assert code == 2
    assert "HTTP 401" in caplog.text
    assert "check that HF_TOKEN is valid and has write access to tweet-org" in caplog.text
    assert len(hub_stub.requests_matching("POST", "/api/repos/create")) == 1
    assert "hf_wrongTOKEN" not in caplog.text


def test_missing_token_fails_before_any_request(model_folder, hub_stub, monkeypatch, caplog):
    monkeypatch.delenv("HF_TOKEN")
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 2
    assert "no Hugging Face token: export HF_TOKEN" in caplog.text
    assert hub_stub.requests == []


def test_offline_mode_fails_with_the_fix(model_folder, hub_stub, monkeypatch, caplog):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 2
    assert "run this command with HF_HUB_OFFLINE=0" in caplog.text
    assert hub_stub.requests == []


def test_a_leaked_token_is_never_sent(model_folder, hub_stub, caplog):
    (model_folder / "cleaning_report.md").write_text(f"debug: token={CANARY_TOKEN}\n", encoding="utf-8")
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 2
    assert "cleaning_report.md contains what looks like an access token" in caplog.text
    assert hub_stub.requests == []
    assert CANARY_TOKEN not in caplog.text


def test_pushed_revision_loads_back_at_its_sha(model_folder, hub_stub, capsys, tmp_path):
    from huggingface_hub import snapshot_download

    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    sha = stdout_json(capsys)["commit_sha"]
    # A later push moves main; the pinned SHA must still give the first revision's bytes.
    (model_folder / "benchmark.json").write_text(json.dumps({"rows": ["later"]}), encoding="utf-8")
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    downloaded = Path(snapshot_download(REPO_ID, revision=sha, cache_dir=tmp_path / "download"))
    for name in PUBLISHED:
        if name not in ("README.md", "benchmark.json"):
            assert (downloaded / name).read_bytes() == (model_folder / name).read_bytes(), name
    assert b"later" not in (downloaded / "benchmark.json").read_bytes()


def test_predictor_loads_the_pushed_model_at_a_pinned_revision(model_folder, hub_stub, capsys):
    predictor_module = pytest.importorskip("tweet_classifier.inference.predictor")
    from tweet_classifier.training.evaluate import load_model, predict_probabilities

    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    sha = stdout_json(capsys)["commit_sha"]
    predictor = predictor_module.Predictor.load(REPO_ID, revision=sha, backend="torch-fp32")
    assert predictor.model_version == f"{REPO_ID}@{sha[:12]}"
    assert predictor.labels == ["negative", "neutral", "positive"]
    prediction = predictor.predict("@united thanks for the quick rebooking!")
    local = load_model(model_folder)
    expected = predict_probabilities(
        local.model, local.tokenizer, [prediction.normalized_text], max_length=local.manifest.max_length
    )[0]
    assert list(prediction.scores.values()) == pytest.approx(list(expected), abs=1e-5)


# -- retries (unit) --------------------------------------------------------------------------------------------


class _FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class _FakeHttpError(Exception):
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"status {status_code}")
        self.response = _FakeResponse(status_code, headers)
        self.server_message = "server says no"


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    waits: list[float] = []
    answers = iter(
        [_FakeHttpError(500), _FakeHttpError(502), _FakeHttpError(503), _FakeHttpError(429, {"Retry-After": "7"})]
    )

    def flaky() -> str:
        error = next(answers, None)
        if error is not None:
            raise error
        return "done"

    config = HubConfig(max_retries=4, retry_base_delay_s=1.0, retry_max_delay_s=3.0)
    assert hub.call_with_retries(flaky, "commit", config, sleep=waits.append) == "done"
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_non_transient_errors_are_not_retried():
    waits: list[float] = []

    def forbidden() -> None:
        raise _FakeHttpError(403)

    with pytest.raises(_FakeHttpError):
        hub.call_with_retries(forbidden, "commit", HubConfig(), sleep=waits.append)
    assert waits == []


# -- config on the command line ----------------------------------------------------------------------------------


def test_hub_overrides_apply_without_a_config_file():
    parser = cli.build_command_parser("push")
    args = parser.parse_args(["--model", "m", "--set", "hub.max_retries=1", "--set", "hub.retry_base_delay_s=0"])
    assert hub.hub_config_from_args(args) == HubConfig(max_retries=1, retry_base_delay_s=0.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=2", "without --config only hub.KEY=VALUE overrides apply"),
        ("hub.max_retries=many", "config key 'hub.max_retries' has invalid value 'many'"),
        ("hub.colour=red", "config key 'hub.colour'"),
    ],
)
def test_bad_hub_overrides_are_user_errors(override, message, caplog, tmp_path):
    code = run_cli("push", "--model", "m", "--repo-id", REPO_ID, "--set", override, "--dry-run", str(tmp_path / "o"))
    assert code == 2
    assert message in caplog.text


def test_repo_id_and_revision_come_from_the_config(model_folder, tmp_path, capsys):
    overlay = tmp_path / "publish.yaml"
    overlay.write_text(f"hub:\n  repo_id: {REPO_ID}\n  revision: candidate\n", encoding="utf-8")
    configs = ["--config", str(REPO_ROOT / "configs/airline.yaml"), "--config", str(overlay)]
    assert run_cli("push", "--model", str(model_folder), *configs, "--dry-run", str(tmp_path / "o")) == 0
    result = stdout_json(capsys)
    assert (result["repo_id"], result["revision"]) == (REPO_ID, "candidate")


# -- Space deploy -------------------------------------------------------------------------------------------------

SPACE_ID = "tweet-org/tweet-classifier-demo"
SPACE_CARD = "---\ntitle: Tweet Classifier\nsdk: gradio\napp_file: app.py\n---\n\n# demo\n"
SPACE_FILES = [
    "README.md",
    "app.py",
    "configs/airline.yaml",
    "requirements.txt",
    "tweet_classifier/__init__.py",
    "tweet_classifier/ui/layout.py",
]


@pytest.fixture
def project(tmp_path) -> Path:
    """A project checkout with everything a Space needs and much it must never get."""
    root = tmp_path / "checkout"
    files = {
        "README.md": SPACE_CARD,
        "app.py": "from tweet_classifier import ui\n",
        "requirements.txt": "gradio==6.31.0\n",
        "requirements.lock": f"gradio==6.31.0 \\\n    --hash=sha256:{'0' * 64}\n",
        "configs/airline.yaml": "name: airline\n",
        "src/tweet_classifier/__init__.py": "",
        "src/tweet_classifier/ui/layout.py": "LAYOUT = 1\n",
        "src/tweet_classifier/__pycache__/hub.cpython-311.pyc": "bytecode",
        "src/tweet_classifier/py.typed": "",
        "tests/hub/test_hub.py": "def test(): ...\n",
        "models/airline/model.safetensors": "weights",
        ".venv/lib/python3.11/site.py": "venv",
        "data/Tweets.csv": "tweet_id,text\n",
        "Makefile": "all:\n",
        ".env": "HF_TOKEN=secret\n",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def test_deploy_space_dry_run_lists_exactly_the_app_files(project, tmp_path, capsys):
    out = tmp_path / "space"
    code = run_cli(
        "deploy-space", "--space-id", SPACE_ID, "--model-id", REPO_ID, "--source", str(project), "--dry-run", str(out)
    )
    assert code == 0
    result = stdout_json(capsys)
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == SPACE_FILES == result["files"]
    assert result["variables"]["MODEL_ID"] == REPO_ID
    # The Space's pip gets hash checking and PyTorch's CPU index first, then exactly the project's lock.
    staged = (out / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert f"--extra-index-url {hub.TORCH_CPU_INDEX_URL}" in staged
    assert "--require-hashes" in staged
    assert staged[-2:] == ["gradio==6.31.0 \\", f"    --hash=sha256:{'0' * 64}"]


def test_the_staged_space_imports_the_package_with_nothing_installed(tmp_path, capsys):
    """The issue's reproduction: in the staged folder, python -S with only site-packages on sys.path."""
    import site
    import subprocess
    import sys

    out = tmp_path / "space"
    assert run_cli("deploy-space", "--space-id", SPACE_ID, "--dry-run", str(out)) == 0
    code = (
        "import sys; sys.path.extend(sys.argv[1:]); import tweet_classifier.serving.app, tweet_classifier.serving.ui; "
        "print(tweet_classifier.__file__)"
    )
    completed = subprocess.run(
        [sys.executable, "-S", "-c", code, *site.getsitepackages()],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert Path(completed.stdout.strip()) == out / "tweet_classifier" / "__init__.py"


def test_the_dockerfile_and_the_space_use_the_same_cpu_torch_index():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG TORCH_INDEX_URL={hub.TORCH_CPU_INDEX_URL}\n" in dockerfile


def test_deploy_space_dry_run_of_this_checkout_ships_the_package_but_no_tests(tmp_path, capsys):
    if not (REPO_ROOT / "app.py").is_file():
        pytest.skip("app.py is not in this checkout yet")
    out = tmp_path / "space"
    assert run_cli("deploy-space", "--space-id", SPACE_ID, "--dry-run", str(out)) == 0
    files = stdout_json(capsys)["files"]
    assert "tweet_classifier/hub/publish.py" in files
    assert "app.py" in files
    assert "README.md" in files
    assert not any(name.startswith(("tests/", ".venv/", "models/", "data/")) for name in files)


def test_deploy_space_needs_the_space_card(project, tmp_path, caplog):
    (project / "README.md").write_text("# no front matter\n", encoding="utf-8")
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--source", str(project), "--dry-run", str(tmp_path / "o"))
    assert code == 2
    assert "has no Space card" in caplog.text


def test_deploy_space_needs_a_project_root(tmp_path, caplog):
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--source", str(tmp_path), "--dry-run", str(tmp_path / "o"))
    assert code == 2
    assert "is not the project root" in caplog.text


def test_deploy_space_needs_package_sources(project, tmp_path, caplog):
    shutil.rmtree(project / "src")
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--source", str(project), "--dry-run", str(tmp_path / "o"))
    assert code == 2
    assert "holds no Python files" in caplog.text


def test_deploy_space_uploads_the_app_and_pins_the_model(model_folder, project, hub_stub, capsys):
    assert run_cli("push", "--model", str(model_folder), "--repo-id", REPO_ID) == 0
    model_sha = stdout_json(capsys)["commit_sha"]
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--model-id", REPO_ID, "--source", str(project))
    assert code == 0
    result = stdout_json(capsys)
    space = hub_stub.repo(SPACE_ID, "space")
    assert space.sdk == "gradio"
    stored = hub_stub.files_at(SPACE_ID, "main", "space")
    assert sorted(stored) == sorted([".gitattributes", *SPACE_FILES])
    assert result["commit_sha"] == hub_stub.head(SPACE_ID, repo_type="space")
    assert {key: value["value"] for key, value in space.variables.items()} == {
        "MODEL_ID": REPO_ID,
        "MODEL_REVISION": model_sha,
    }
    assert_token_only_in_authorization_headers(hub_stub)
    assert all(CANARY_TOKEN.encode() not in content for content in stored.values())


def test_deploy_space_keeps_a_given_commit_sha_and_removes_stale_modules(project, hub_stub, capsys):
    pinned = "0123456789abcdef0123456789abcdef01234567"
    args = ["deploy-space", "--space-id", SPACE_ID, "--model-id", REPO_ID, "--model-revision", pinned]
    assert run_cli(*args, "--source", str(project)) == 0
    capsys.readouterr()
    (project / "src/tweet_classifier/ui/layout.py").unlink()
    assert run_cli(*args, "--source", str(project)) == 0
    result = stdout_json(capsys)
    assert result["deleted"] == ["tweet_classifier/ui/layout.py"]
    assert hub_stub.repo(SPACE_ID, "space").variables["MODEL_REVISION"]["value"] == pinned
    # Nothing asked the model repo (which does not exist here): the SHA was used as given.
    assert hub_stub.requests_matching("GET", f"/api/models/{REPO_ID}") == []


def test_deploy_space_with_an_unknown_model_is_a_user_error(project, hub_stub, caplog):
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--model-id", "tweet-org/missing", "--source", str(project))
    assert code == 2
    assert "resolve model revision failed for tweet-org/missing" in caplog.text
    assert ("space", SPACE_ID) not in hub_stub.repos


def test_deploy_space_revision_without_model_is_refused(project, hub_stub, caplog):
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--model-revision", "main", "--source", str(project))
    assert code == 2
    assert "--model-revision needs --model-id" in caplog.text


def test_deploy_space_gives_up_after_retries(project, hub_stub, caplog):
    hub_stub.fail("POST", "/commit/", status=503, times=None)
    code = run_cli("deploy-space", "--space-id", SPACE_ID, "--source", str(project), *FAST_RETRIES)
    assert code == 1
    assert "commit failed 4 times (HTTP 503" in caplog.text


def test_project_root_is_this_checkout():
    assert hub.project_root() == REPO_ROOT.resolve()


def test_a_deploy_removes_the_package_from_where_earlier_deploys_put_it(project, hub_stub, capsys):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_stub.endpoint)
    api.create_repo(SPACE_ID, repo_type="space", space_sdk="gradio")
    api.upload_file(
        path_or_fileobj=b"OLD = 1\n", path_in_repo="src/tweet_classifier/old.py", repo_id=SPACE_ID, repo_type="space"
    )
    assert run_cli("deploy-space", "--space-id", SPACE_ID, "--source", str(project)) == 0
    assert stdout_json(capsys)["deleted"] == ["src/tweet_classifier/old.py"]
    assert sorted(hub_stub.files_at(SPACE_ID, "main", "space")) == sorted([".gitattributes", *SPACE_FILES])


def test_staging_adds_the_transformers_pipeline_and_cards_the_repo_id(model_folder, tmp_path):
    # A folder trained before folders carried the pipeline.
    (model_folder / "hf_pipeline.py").unlink()
    (model_folder / "text.py").unlink()
    config = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))
    del config["custom_pipelines"]
    (model_folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    files = hub.stage_model_files(model_folder, tmp_path / "staged", "tweet-org/minilm-airline")
    assert {"hf_pipeline.py", "text.py"} <= set(files)
    config = json.loads((tmp_path / "staged" / "config.json").read_text(encoding="utf-8"))
    assert "text-classification" in config["custom_pipelines"]
    assert not (model_folder / "hf_pipeline.py").exists(), "the model folder itself must not be modified"
    card_text = (tmp_path / "staged" / "README.md").read_text(encoding="utf-8")
    assert 'model="tweet-org/minilm-airline", trust_remote_code=True' in card_text
