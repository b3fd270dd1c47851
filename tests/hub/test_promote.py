"""Champion / challenger gate: the rules, the three outcomes end to end, the report, W&B, pushing, retrain.sh."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, build_tiny_model_folder
from tests.hub_stub import HubStub, connect_hub_client
from tweet_classifier import cli
from tweet_classifier.config import PromotionConfig, load_config
from tweet_classifier.hub import promote
from tweet_classifier.metrics import classification_report_dict

# huggingface_hub's own LFS upload passes a file object as data=, which httpx2 flags; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

CONFIGS = [str(REPO_ROOT / "configs/airline.yaml"), str(REPO_ROOT / "configs/smoke.yaml")]
# Fast and deterministic: no W&B unless a test asks for it, few latency texts, a generous latency budget.
FAST = [
    "data.max_rows=150",
    "tracking.mode=disabled",
    "promotion.latency_texts=10",
    "promotion.latency_warmup=2",
    "promotion.latency_threads=1",
    "promotion.export_challenger=false",
    "promotion.p95_budget_ms=10000.0",
    "hub.retry_base_delay_s=0.001",
    "hub.max_retries=1",
]
REPO_ID = "tweet-org/minilm-airline"


def smoke_config(*overrides: str):
    return load_config(CONFIGS, [*FAST, *overrides])


@pytest.fixture(scope="module")
def prepared():
    """The smoke overlay's prepared splits, cleaned once for the module (the frozen test set of every run)."""
    from tweet_classifier.data.prepare import prepare_data

    return prepare_data(smoke_config())


@pytest.fixture(autouse=True)
def _keep_caplog_attached(monkeypatch):
    # cli.main reconfigures logging with basicConfig(force=True), which would detach pytest's capture handler.
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)


@pytest.fixture
def use_prepared(prepared, monkeypatch):
    """retrain() prepares the data itself; hand it the module's copy instead of re-cleaning 14k rows."""
    monkeypatch.setattr("tweet_classifier.data.prepare.prepare_data", lambda config: prepared)
    return prepared


@pytest.fixture
def champion_dir(tiny_model_dir, tmp_path) -> Path:
    target = tmp_path / "champion"
    shutil.copytree(tiny_model_dir, target)
    return target


def copy_trainer(source: Path):
    """A 'training run' whose challenger is byte-identical to ``source``: every delta is exactly zero."""

    def train(config, output_dir, prepared):
        shutil.copytree(source, output_dir)
        return output_dir

    return train


def seeded_trainer(seed: int):
    def train(config, output_dir, prepared):
        return build_tiny_model_folder(Path(output_dir), seed=seed)

    return train


def read_decision(out: Path) -> dict:
    return json.loads((out / promote.REPORT_JSON).read_text(encoding="utf-8"))


# -- the rules -----------------------------------------------------------------------------------------------


def report(per_class_f1: dict[str, float]) -> dict:
    return {
        "macro_f1": sum(per_class_f1.values()) / len(per_class_f1),
        "per_class": {label: {"f1": f1} for label, f1 in per_class_f1.items()},
    }


LATENCY_OK = promote.LatencyStats(n=50, p50_ms=3.0, p95_ms=5.0, mean_ms=3.2, backend="torch-fp32")
RULES = PromotionConfig(min_improvement=0.01, max_class_drop=0.02, p95_budget_ms=10.0)


def test_a_better_challenger_passes_every_rule():
    decision = promote.decide(
        report({"neg": 0.80, "neu": 0.60, "pos": 0.70}),
        report({"neg": 0.82, "neu": 0.63, "pos": 0.71}),
        LATENCY_OK,
        RULES,
    )
    assert decision.promote
    assert decision.macro_f1_delta == pytest.approx(0.02)
    assert decision.per_class_delta == pytest.approx({"neg": 0.02, "neu": 0.03, "pos": 0.01})
    assert all(reason.startswith("PASS") for reason in decision.reasons)
    assert len(decision.reasons) == 1 + 3 + 1


def test_an_improvement_below_the_threshold_is_refused():
    decision = promote.decide(
        report({"neg": 0.80, "neu": 0.60}), report({"neg": 0.805, "neu": 0.605}), LATENCY_OK, RULES
    )
    assert not decision.promote
    assert decision.reasons[0].startswith("FAIL macro-F1 improvement: 0.7050 vs 0.7000 (delta +0.0050")


def test_exactly_the_threshold_is_enough():
    decision = promote.decide(report({"neg": 0.80, "neu": 0.60}), report({"neg": 0.81, "neu": 0.61}), LATENCY_OK, RULES)
    assert decision.promote


def test_a_class_that_drops_too_far_blocks_a_macro_gain():
    champion = report({"neg": 0.80, "neu": 0.60, "pos": 0.70})
    challenger = report({"neg": 0.90, "neu": 0.57, "pos": 0.80})  # macro +0.057, neutral -0.03
    decision = promote.decide(champion, challenger, LATENCY_OK, RULES)
    assert not decision.promote
    failed = [reason for reason in decision.reasons if reason.startswith("FAIL")]
    assert failed == ["FAIL F1 of class neu: 0.5700 vs 0.6000 (delta -0.0300, may drop at most 0.0200)"]


def test_a_slow_challenger_is_refused():
    slow = promote.LatencyStats(n=50, p50_ms=8.0, p95_ms=12.5, mean_ms=8.4, backend="onnx-int8")
    decision = promote.decide(report({"neg": 0.5}), report({"neg": 0.9}), slow, RULES)
    assert not decision.promote
    assert decision.reasons[-1] == "FAIL p95 latency: 12.50 ms for one text on onnx-int8 (budget 10.00 ms, n=50)"


def test_different_label_sets_cannot_be_compared():
    with pytest.raises(promote.PromotionError, match="cannot be compared"):
        promote.decide(report({"neg": 0.5, "pos": 0.5}), report({"neg": 0.5, "neu": 0.5}), LATENCY_OK, RULES)


def test_latency_percentiles_match_numpy():
    timings = [float(value) for value in np.random.default_rng(0).gamma(2.0, 3.0, size=137)]
    stats = promote.LatencyStats.from_timings(timings, "torch-fp32")
    assert stats.n == 137
    assert stats.p50_ms == pytest.approx(np.percentile(timings, 50), abs=1e-3)
    assert stats.p95_ms == pytest.approx(np.percentile(timings, 95), abs=1e-3)
    assert stats.mean_ms == pytest.approx(np.mean(timings), abs=1e-3)


def test_the_test_set_fingerprint_changes_with_any_row(prepared):
    first = promote.fingerprint_test_set(prepared.test, prepared.labels)
    assert first["n"] == len(prepared.test)
    changed = prepared.test.copy()
    changed.loc[changed.index[0], "label"] = "positive" if changed["label"].iloc[0] != "positive" else "negative"
    assert promote.fingerprint_test_set(changed, prepared.labels)["sha256"] != first["sha256"]
    assert promote.fingerprint_test_set(prepared.test.copy(), prepared.labels) == first


# -- whole runs (real data cleaning, real evaluation, real Predictor latency) ----------------------------------


def test_an_identical_challenger_is_promoted_when_no_gain_is_required(use_prepared, champion_dir, tmp_path):
    out = tmp_path / "retrain"
    config = smoke_config("promotion.min_improvement=0.0", "promotion.max_class_drop=0.0")
    result = promote.retrain(config, str(champion_dir), out, trainer=copy_trainer(champion_dir))
    assert (result.verdict, result.exit_code) == ("promoted", promote.EXIT_PROMOTED)
    decision = read_decision(out)
    assert decision["promote"] is True
    assert decision["deltas"]["macro_f1"] == 0.0
    assert set(decision["deltas"]["per_class"].values()) == {0.0}
    assert decision["champion"]["metrics"] == decision["challenger"]["metrics"]
    assert decision["champion"]["metrics"]["n"] == decision["test_set"]["n"] == len(use_prepared.test)
    for role in ("champion", "challenger"):
        latency = decision[role]["latency"]
        assert latency["n"] == 10
        assert 0 < latency["p50_ms"] <= latency["p95_ms"]
        assert latency["backend"] == "torch-fp32"
    assert decision["push"] is None
    markdown = (out / promote.REPORT_MARKDOWN).read_text(encoding="utf-8")
    assert markdown.startswith("# Retraining decision: PROMOTED")
    assert "| macro-F1 |" in markdown
    assert "## Latency, one text per call (ms)" in markdown


def test_an_identical_challenger_is_refused_when_a_gain_is_required(use_prepared, champion_dir, tmp_path):
    out = tmp_path / "retrain"
    result = promote.retrain(
        smoke_config("promotion.min_improvement=0.005"), str(champion_dir), out, trainer=copy_trainer(champion_dir)
    )
    assert (result.verdict, result.exit_code) == ("refused", promote.EXIT_REFUSED)
    decision = read_decision(out)
    assert decision["promote"] is False
    assert decision["reasons"][0].startswith("FAIL macro-F1 improvement")
    assert "needs >= +0.0050" in decision["reasons"][0]
    assert all(reason.startswith("PASS") for reason in decision["reasons"][1:])


def test_the_latency_budget_is_measured_not_assumed(use_prepared, champion_dir, tmp_path):
    out = tmp_path / "retrain"
    config = smoke_config("promotion.min_improvement=0.0", "promotion.p95_budget_ms=0.001")
    result = promote.retrain(config, str(champion_dir), out, trainer=copy_trainer(champion_dir))
    assert result.exit_code == promote.EXIT_REFUSED
    assert read_decision(out)["reasons"][-1].startswith("FAIL p95 latency")


def test_crafted_metrics_show_a_per_class_regression_in_the_report(use_prepared, champion_dir, tmp_path, monkeypatch):
    """A challenger with a higher macro-F1 that sacrifices one class is refused, and the report says which."""
    test = use_prepared.test
    labels = use_prepared.labels
    truth = list(test["label"])
    champion_report = classification_report_dict(truth, truth[:1] * len(truth), labels)
    challenger_report = copy.deepcopy(champion_report)
    challenger_report["macro_f1"] += 0.05
    challenger_report["per_class"]["neutral"]["f1"] = champion_report["per_class"]["neutral"]["f1"] - 0.1
    challenger_path = tmp_path / "retrain" / "challenger"

    def crafted(model_dir, prepared, split, config, revision=None):
        assert split == "test"
        assert prepared is use_prepared  # the same frozen test set for both
        return challenger_report if Path(model_dir) == challenger_path else champion_report

    monkeypatch.setattr("tweet_classifier.training.evaluate.evaluate_model", crafted)
    result = promote.retrain(smoke_config(), str(champion_dir), tmp_path / "retrain", trainer=seeded_trainer(1))
    assert result.exit_code == promote.EXIT_REFUSED
    decision = read_decision(tmp_path / "retrain")
    assert decision["deltas"]["macro_f1"] == pytest.approx(0.05)
    assert decision["deltas"]["per_class"]["neutral"] == pytest.approx(-0.1)
    failed = [reason for reason in decision["reasons"] if reason.startswith("FAIL")]
    assert len(failed) == 1
    assert failed[0].startswith("FAIL F1 of class neutral")
    assert "| F1 neutral |" in (tmp_path / "retrain" / promote.REPORT_MARKDOWN).read_text(encoding="utf-8")


def test_a_training_crash_exits_1_and_still_writes_the_report(use_prepared, champion_dir, tmp_path):
    def broken(config, output_dir, prepared):
        raise RuntimeError("CUDA error: device-side assert triggered")

    out = tmp_path / "retrain"
    result = promote.retrain(smoke_config(), str(champion_dir), out, trainer=broken)
    assert (result.verdict, result.exit_code) == ("failed", promote.EXIT_FAILED)
    decision = read_decision(out)
    assert decision["error"] == "train the challenger: RuntimeError: CUDA error: device-side assert triggered"
    assert decision["promote"] is None
    assert "error: train the challenger" in (out / promote.REPORT_MARKDOWN).read_text(encoding="utf-8")


def test_a_champion_with_other_labels_fails_the_run(use_prepared, tmp_path):
    champion = build_tiny_model_folder(tmp_path / "hate-model", labels=["not-hate", "hate"])
    result = promote.retrain(smoke_config(), str(champion), tmp_path / "retrain", trainer=seeded_trainer(1))
    assert result.exit_code == promote.EXIT_FAILED
    assert result.error.startswith("evaluate: EvaluationError: the split has labels")


def test_a_missing_champion_fails_before_training(use_prepared, tmp_path):
    trained = []
    result = promote.retrain(
        smoke_config(), str(tmp_path / "nowhere"), tmp_path / "retrain", trainer=lambda *args: trained.append(args)
    )
    assert result.exit_code == promote.EXIT_FAILED
    assert result.error.startswith("load the champion")
    assert trained == []


def test_decisions_are_logged_to_wandb_offline(use_prepared, champion_dir, tmp_path):
    from tweet_classifier.training.tracking import read_offline_run

    out = tmp_path / "retrain"
    config = smoke_config("tracking.mode=offline", "promotion.min_improvement=0.0")
    promote.retrain(config, str(champion_dir), out, trainer=copy_trainer(champion_dir))
    run_dirs = list((out / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    record = read_offline_run(run_dirs[0])
    assert record.summary["retrain/verdict"] == "promoted"
    assert record.summary["retrain/delta_macro_f1"] == 0.0
    assert record.summary["challenger/latency/p95_ms"] > 0
    table = record.tables["retrain/per_class"]
    assert table["columns"] == ["label", "champion_f1", "challenger_f1", "delta"]
    assert [row[0] for row in table["data"]] == use_prepared.labels
    # The promoted challenger's folder is the model Artifact's version aliased champion / production.
    (artifact,) = [artifact for artifact in record.artifacts if artifact["type"] == "model"]
    assert artifact["name"] == f"{config.name}-model"
    assert set(artifact["aliases"]) == {"champion", "production", "latest"}
    assert "config.json" in artifact["files"]
    assert "model.safetensors" in artifact["files"]


def test_a_refused_challenger_is_aliased_rejected_in_wandb(use_prepared, champion_dir, tmp_path):
    from tweet_classifier.training.tracking import read_offline_run

    out = tmp_path / "retrain"
    config = smoke_config("tracking.mode=offline", "promotion.min_improvement=0.5")
    result = promote.retrain(config, str(champion_dir), out, trainer=copy_trainer(champion_dir))
    assert result.verdict == "refused"
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    (artifact,) = [artifact for artifact in read_offline_run(run_dir).artifacts if artifact["type"] == "model"]
    assert artifact["name"] == f"{config.name}-model"
    assert {"challenger", "rejected"} <= set(artifact["aliases"])
    assert not {"champion", "production"} & set(artifact["aliases"])


def test_a_failed_retrain_logs_no_model_artifact(use_prepared, tmp_path):
    from tweet_classifier.training.tracking import read_offline_run

    out = tmp_path / "retrain"
    config = smoke_config("tracking.mode=offline")
    assert promote.retrain(config, str(tmp_path / "nowhere"), out).verdict == "failed"
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    assert not [artifact for artifact in read_offline_run(run_dir).artifacts if artifact["type"] == "model"]


# -- pushing -----------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_stub(monkeypatch, tmp_path):
    with HubStub() as stub:
        yield connect_hub_client(stub, monkeypatch, tmp_path / "hf-cache")


def _publishable(trainer):
    """Training writes metrics.json into the model folder; the copy/seed fakes need it for the push."""

    def train(config, output_dir, prepared):
        folder = Path(trainer(config, output_dir, prepared))
        truth = list(prepared.test["label"])
        metrics = {"test": classification_report_dict(truth, truth, prepared.labels)}
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        (folder / "run_config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        return folder

    return train


def test_a_promoted_challenger_is_pushed(use_prepared, champion_dir, tmp_path, hub_stub):
    out = tmp_path / "retrain"
    config = smoke_config("promotion.min_improvement=0.0")
    result = promote.retrain(
        config, str(champion_dir), out, push_repo=REPO_ID, trainer=_publishable(copy_trainer(champion_dir))
    )
    assert result.exit_code == promote.EXIT_PROMOTED
    head = hub_stub.head(REPO_ID)
    assert result.push["commit_sha"] == head
    assert read_decision(out)["push"]["commit_url"].endswith(head)
    assert hub_stub.files_at(REPO_ID, head)["model.safetensors"] == (out / "challenger/model.safetensors").read_bytes()


def test_a_refused_challenger_is_not_pushed(use_prepared, champion_dir, tmp_path, hub_stub):
    result = promote.retrain(
        smoke_config(), str(champion_dir), tmp_path / "retrain", push_repo=REPO_ID,
        trainer=_publishable(copy_trainer(champion_dir)),
    )  # fmt: skip
    assert result.exit_code == promote.EXIT_REFUSED
    assert result.push is None
    assert hub_stub.requests == []


def test_force_pushes_a_refused_challenger_and_records_it(use_prepared, champion_dir, tmp_path, hub_stub):
    out = tmp_path / "retrain"
    result = promote.retrain(
        smoke_config(), str(champion_dir), out, push_repo=REPO_ID, force=True,
        trainer=_publishable(copy_trainer(champion_dir)),
    )  # fmt: skip
    assert (result.verdict, result.exit_code) == ("forced", 0)
    decision = read_decision(out)
    assert decision["promote"] is False
    assert decision["forced"] is True
    assert decision["push"]["commit_sha"] == hub_stub.head(REPO_ID)
    assert "**forced**" in (out / promote.REPORT_MARKDOWN).read_text(encoding="utf-8")


def test_a_failed_push_exits_1_but_keeps_the_verdict(use_prepared, champion_dir, tmp_path, hub_stub):
    hub_stub.fail("POST", "/commit/", status=503, times=None)
    out = tmp_path / "retrain"
    result = promote.retrain(
        smoke_config("promotion.min_improvement=0.0"), str(champion_dir), out, push_repo=REPO_ID,
        trainer=_publishable(copy_trainer(champion_dir)),
    )  # fmt: skip
    assert result.exit_code == promote.EXIT_FAILED
    decision = read_decision(out)
    assert decision["promote"] is True
    assert decision["error"].startswith("push: RuntimeError: commit failed 2 times (HTTP 503")
    assert decision["push"] is None
    assert set(hub_stub.files_at(REPO_ID, "main")) == {".gitattributes"}  # the repo as it was created


def test_a_champion_on_the_hub_is_evaluated_at_its_commit(use_prepared, champion_dir, tmp_path, hub_stub):
    from tweet_classifier.hub import publish as hub

    champion_with_metrics = _publishable(copy_trainer(champion_dir))(smoke_config(), tmp_path / "c", use_prepared)
    pushed = hub.push_model_folder(champion_with_metrics, REPO_ID, endpoint=hub_stub.endpoint)
    out = tmp_path / "retrain"
    config = smoke_config("promotion.min_improvement=0.0")
    result = promote.retrain(config, REPO_ID, out, trainer=copy_trainer(champion_dir))
    assert result.exit_code == promote.EXIT_PROMOTED
    champion = read_decision(out)["champion"]
    assert champion["model"] == REPO_ID
    assert champion["revision"] == pushed.commit_sha


# -- command line ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_train_model(monkeypatch, champion_dir):
    def train_model(config, output_dir, prepared=None):
        shutil.copytree(champion_dir, output_dir)
        return SimpleNamespace(model_dir=Path(output_dir))

    monkeypatch.setattr("tweet_classifier.training.train.train_model", train_model)


@pytest.mark.parametrize(("gain", "expected"), [("0.0", 0), ("0.01", 3)], ids=["promoted", "refused"])
def test_cli_exit_codes(use_prepared, fake_train_model, champion_dir, tmp_path, capsys, gain, expected):
    out = tmp_path / "retrain"
    argv = ["retrain", "--champion", str(champion_dir), "--out", str(out)]
    argv += [item for path in CONFIGS for item in ("--config", path)]
    argv += [item for override in [*FAST, f"promotion.min_improvement={gain}"] for item in ("--set", override)]
    assert cli.main(argv) == expected
    printed = json.loads(capsys.readouterr().out)
    assert printed["exit_code"] == expected
    assert printed["report"] == str(out / promote.REPORT_JSON)


def test_cli_force_without_push_is_a_usage_error(champion_dir, caplog):
    argv = ["retrain", "--champion", str(champion_dir), "--force", "--config", CONFIGS[0]]
    assert cli.main(argv) == 2
    assert "--force only changes what is pushed" in caplog.text


def test_cli_push_without_token_fails_before_training(champion_dir, caplog, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent/token")
    argv = ["retrain", "--champion", str(champion_dir), "--push", REPO_ID, "--config", CONFIGS[0]]
    assert cli.main(argv) == 2
    assert "no Hugging Face token" in caplog.text


# -- scripts/retrain.sh -----------------------------------------------------------------------------------------


@pytest.fixture
def fake_cli(tmp_path) -> Path:
    """Stands in for the tweet-classifier executable: records its argv and environment, exits with $FAKE_EXIT."""
    script = tmp_path / "fake-tweet-classifier"
    script.write_text(
        "#!/usr/bin/env bash\n"
        'printf "%s\\n" "$@" > "$FAKE_RECORD.args"\n'
        'printf "%s\\n" "HF_HUB_OFFLINE=$HF_HUB_OFFLINE" "DATA_DIR=$DATA_DIR" > "$FAKE_RECORD.env"\n'
        'exit "${FAKE_EXIT:-0}"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def run_retrain_sh(fake_cli: Path, tmp_path: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value for key, value in os.environ.items() if key not in {"HF_HUB_OFFLINE", "DATA_DIR", "CONFIG"}
    }
    environment.update({"TWEET_CLASSIFIER": str(fake_cli), "FAKE_RECORD": str(tmp_path / "record"), **env})
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "retrain.sh"), *extra],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("exit_code", [0, 1, 2, 3])
def test_retrain_sh_passes_the_exit_code_through(fake_cli, tmp_path, exit_code):
    result = run_retrain_sh(fake_cli, tmp_path, CHAMPION="tweet-org/champion", FAKE_EXIT=str(exit_code))
    assert result.returncode == exit_code


def test_retrain_sh_builds_the_command_from_the_environment(fake_cli, tmp_path):
    result = run_retrain_sh(
        fake_cli,
        tmp_path,
        "--set",
        "train.epochs=2.0",
        CHAMPION="tweet-org/champion",
        PUSH_REPO="tweet-org/champion",
        FORCE="1",
        CONFIG="configs/airline.yaml configs/smoke.yaml",
        RETRAIN_OUT="outputs/nightly",
        SHARED="/mirrors",
    )
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "record.args").read_text(encoding="utf-8").split("\n")[:-1]
    assert args == [
        "retrain",
        "--champion",
        "tweet-org/champion",
        "--out",
        "outputs/nightly",
        "--config",
        "configs/airline.yaml",
        "--config",
        "configs/smoke.yaml",
        "--push",
        "tweet-org/champion",
        "--force",
        "--set",
        "train.epochs=2.0",
    ]
    environment = (tmp_path / "record.env").read_text(encoding="utf-8").splitlines()
    assert environment == ["HF_HUB_OFFLINE=0", "DATA_DIR=/mirrors/datasets"]


def test_retrain_sh_stays_offline_for_a_local_champion_without_push(fake_cli, tmp_path, champion_dir):
    result = run_retrain_sh(fake_cli, tmp_path, CHAMPION=str(champion_dir))
    assert result.returncode == 0, result.stderr
    assert "HF_HUB_OFFLINE=1" in (tmp_path / "record.env").read_text(encoding="utf-8")
    assert "--push" not in (tmp_path / "record.args").read_text(encoding="utf-8")


def test_retrain_sh_requires_a_champion(fake_cli, tmp_path):
    result = run_retrain_sh(fake_cli, tmp_path)
    assert result.returncode != 0
    assert "set CHAMPION" in result.stderr
    assert not (tmp_path / "record.args").exists()


def test_retrain_sh_passes_shellcheck():
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if not shellcheck.exists():
        pytest.skip("shellcheck is not installed in this environment")
    result = subprocess.run(
        [str(shellcheck), str(REPO_ROOT / "scripts" / "retrain.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_retrain_end_to_end_with_real_training(tmp_path, champion_dir, capsys):
    """The real entry point: clean the smoke slice, train a tiny challenger for a few steps, gate, report."""
    out = tmp_path / "retrain"
    argv = ["retrain", "--champion", str(champion_dir), "--out", str(out)]
    argv += [item for path in CONFIGS for item in ("--config", path)]
    overrides = [*FAST, "train.tiny_model=true", "promotion.export_challenger=true"]
    argv += [item for override in overrides for item in ("--set", override)]
    code = cli.main(argv)
    decision = read_decision(out)
    assert code in (promote.EXIT_PROMOTED, promote.EXIT_REFUSED), decision["error"]
    assert decision["verdict"] in ("promoted", "refused")
    assert (out / "challenger" / "model.safetensors").is_file()
    assert (out / "challenger" / "onnx" / "parity.json").is_file()
    assert decision["challenger"]["metrics"]["n"] == decision["test_set"]["n"]
