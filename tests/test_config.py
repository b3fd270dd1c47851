"""config.py (layering, overrides, strict validation, messages) and cli.py top-level behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from tweet_classifier import cli
from tweet_classifier.config import (
    ConfigError,
    RunConfig,
    apply_override,
    build_config,
    data_dir,
    deep_merge,
    load_config,
    load_serving_config,
    parse_override,
    save_config,
)

from .conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def write_yaml(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["airline.yaml", "tweet_eval_hate.yaml", "tweet_eval_offensive.yaml"])
def test_shipped_configs_load_alone_and_with_the_smoke_overlay(name: str) -> None:
    config = load_config([CONFIGS / name])
    smoke = load_config([CONFIGS / name, CONFIGS / "smoke.yaml"])
    assert config.data.max_rows is None
    assert smoke.data.max_rows == 400
    assert smoke.train.max_steps == 12
    # The overlay changes only what it names.
    assert smoke.data.source == config.data.source
    assert smoke.cleaning.repairs == config.cleaning.repairs
    assert smoke.cleaning.label_noise.folds == 2
    assert smoke.cleaning.label_noise.policy == config.cleaning.label_noise.policy


def test_later_files_win_and_nested_sections_merge(tmp_path: Path) -> None:
    base = write_yaml(
        tmp_path, "name: base\ndata:\n  source: a.csv\n  labels: [x, y]\ntrain:\n  epochs: 2.0\n", "base.yaml"
    )
    overlay = write_yaml(tmp_path, "data:\n  source: b.csv\ntrain:\n  batch_size: 8\n", "overlay.yaml")
    config = load_config([base, overlay])
    assert config.data.source == "b.csv"
    assert config.data.labels == ["x", "y"]
    assert config.train.epochs == 2.0
    assert config.train.batch_size == 8


def test_overrides_apply_after_files_with_yaml_types() -> None:
    config = load_config(
        [CONFIGS / "airline.yaml"],
        ["train.epochs=1.5", "data.labels=[a, b, c]", "data.max_rows=10", "tracking.entity=null", "name=renamed"],
    )
    assert config.train.epochs == 1.5
    assert config.data.labels == ["a", "b", "c"]
    assert config.data.max_rows == 10
    assert config.tracking.entity is None
    assert config.name == "renamed"


@pytest.mark.parametrize("word", ["off", "on", "yes", "no", "y", "n"])
def test_yaml_1_1_boolean_words_stay_strings(tmp_path: Path, word: str) -> None:
    # PyYAML's default would turn these into booleans, so "policy: off" would fail validation.
    assert parse_override(f"cleaning.label_noise.policy={word}") == (["cleaning", "label_noise", "policy"], word)
    path = write_yaml(tmp_path, f"name: {word}\ndata:\n  source: x.csv\n")
    assert load_config([path]).name == word


def test_policy_off_works_in_files_and_overrides(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: n\ndata:\n  source: x.csv\ncleaning:\n  label_noise:\n    policy: off\n")
    assert load_config([path]).cleaning.label_noise.policy == "off"
    config = load_config([CONFIGS / "airline.yaml"], ["cleaning.label_noise.policy=off"])
    assert config.cleaning.label_noise.policy == "off"


def test_true_and_false_are_still_booleans() -> None:
    config = load_config([CONFIGS / "airline.yaml"], ["train.bf16=false", "cleaning.drop_empty=True"])
    assert config.train.bf16 is False
    assert config.cleaning.drop_empty is True


def test_override_value_that_is_not_yaml_is_a_string() -> None:
    assert parse_override("name=[unclosed") == (["name"], "[unclosed")
    assert parse_override("name=") == (["name"], "")


@pytest.mark.parametrize("override", ["noequals", "=value", "data..source=x", ".x=1"])
def test_malformed_override(override: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_override(override)
    assert str(error.value) == f"override {override!r} must look like section.key=value"


def test_apply_override_and_deep_merge_do_not_mutate_inputs() -> None:
    base = {"data": {"source": "a", "labels": ["x"]}}
    merged = apply_override(base, "data.source=b")
    assert merged == {"data": {"source": "b", "labels": ["x"]}}
    assert base == {"data": {"source": "a", "labels": ["x"]}}
    assert deep_merge({"a": {"b": 1}}, {"a": 2}) == {"a": 2}


def test_unknown_key_names_key_and_value() -> None:
    with pytest.raises(ConfigError) as error:
        load_config([CONFIGS / "airline.yaml"], ["train.epochz=3"])
    assert str(error.value) == "unknown config key 'train.epochz' (value 3): remove it or fix the spelling"


def test_unknown_section(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: n\ndata:\n  source: x.csv\ntrainer:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer' \(value \{'epochs': 1\}\)"):
        load_config([path])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "config key 'seed' has invalid value 'abc': Input should be a valid integer"),
        (
            'train.max_length="64"',
            "config key 'train.max_length' has invalid value '64': Input should be a valid integer",
        ),
        ("train.bf16=1", "config key 'train.bf16' has invalid value 1: Input should be a valid boolean"),
        ("data.labels=neutral", "config key 'data.labels' has invalid value 'neutral': Input should be a valid list"),
        (
            "data.split.strategy=random",
            "config key 'data.split.strategy' has invalid value 'random': "
            "Input should be 'official', 'stratified' or 'temporal'",
        ),
    ],
)
def test_wrong_type_names_key_and_value(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config([CONFIGS / "airline.yaml"], [override])
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=0", "config key 'train.epochs' has invalid value 0: Input should be greater than 0"),
        (
            "cleaning.low_confidence.threshold=1.5",
            "config key 'cleaning.low_confidence.threshold' has invalid value 1.5: Input should be less than or "
            "equal to 1",
        ),
        ("data.max_rows=-5", "config key 'data.max_rows' has invalid value -5: Input should be greater than 0"),
        (
            "review.min_coverage=1.2",
            "config key 'review.min_coverage' has invalid value 1.2: Input should be less than or equal to 1",
        ),
        (
            "review.min_kept=0",
            "config key 'review.min_kept' has invalid value 0: Input should be greater than or equal to 1",
        ),
        (
            "review.min_per_class=-1",
            "config key 'review.min_per_class' has invalid value -1: Input should be greater than or equal to 0",
        ),
    ],
)
def test_out_of_range_names_key_and_value(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config([CONFIGS / "airline.yaml"], [override])
    assert str(error.value) == message


def test_cross_field_check_is_short_and_names_the_keys() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            [CONFIGS / "airline.yaml"], ["data.split.validation_fraction=0.45", "data.split.test_fraction=0.45"]
        )
    assert str(error.value) == (
        "invalid config: data.split.validation_fraction + data.split.test_fraction must be below 0.8, got 0.45 + 0.45"
    )


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as error:
        load_config([CONFIGS / "airline.yaml"], ["seed=x", "train.nope=1"])
    assert "config key 'seed' has invalid value 'x'" in str(error.value)
    assert "; unknown config key 'train.nope'" in str(error.value)


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config([write_yaml(tmp_path, "name: n\n")])
    assert str(error.value) == "missing config key 'data': add it to the config"


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "name: n\ndata:\n  source: [unclosed\n  labels: x\n")
    with pytest.raises(ConfigError) as error:
        load_config([path])
    assert str(error.value).startswith(f"config file {path} is not valid YAML at line ")
    assert str(error.value).endswith(": fix the syntax")


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"must hold a mapping of sections, got list"):
        load_config([write_yaml(tmp_path, "- a\n- b\n")])


def test_empty_yaml_file_is_an_empty_layer(tmp_path: Path) -> None:
    empty = write_yaml(tmp_path, "", "empty.yaml")
    assert load_config([CONFIGS / "airline.yaml", empty]) == load_config([CONFIGS / "airline.yaml"])


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as error:
        load_config([path])
    assert str(error.value) == f"config file {path} is not UTF-8 text: save it as UTF-8"


def test_missing_file_and_no_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as error:
        load_config([missing])
    assert str(error.value) == f"config file not found: {missing} (pass an existing YAML file to --config)"
    with pytest.raises(ConfigError, match=r"no config given: pass --config configs/airline.yaml"):
        load_config([])


def test_sections_are_frozen_and_strict() -> None:
    config = load_config([CONFIGS / "airline.yaml"])
    with pytest.raises(ValueError, match="frozen"):
        config.train.epochs = 9.0  # type: ignore[misc]


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    config = load_config([CONFIGS / "tweet_eval_hate.yaml"], ["cleaning.label_noise.policy=off"])
    saved = save_config(config, tmp_path / "nested" / "config.yaml")
    assert load_config([saved]) == config
    assert build_config(config.to_dict()) == config
    assert isinstance(config, RunConfig)


def test_data_dir_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("DATA_DIR")
    assert data_dir() == Path("data")


# ---------------------------------------------------------------------------------------------- cli.py


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tweet-classifier")
    for command in cli.COMMANDS:
        assert f"  {command} " in out


def test_cli_without_arguments_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: tweet-classifier" in capsys.readouterr().out


def test_cli_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["trian"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'; choose one of: fetch, data, baseline, train" in err


def test_cli_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: tweet-classifier data" in out
    assert "--config YAML" in out
    assert "--set SECTION.KEY=VALUE" in out
    assert "--out DIR" in out


def test_cli_config_error_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["data", "--config", str(CONFIGS / "airline.yaml"), "--set", "train.epochz=1"])
    assert code == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1
    assert err_lines[0].endswith("unknown config key 'train.epochz' (value 1): remove it or fix the spelling")


def test_cli_os_error_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tweet_classifier.data import prepare as data

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data, "prepare_data", disk_full)
    code = cli.main(["data", "--config", str(CONFIGS / "airline.yaml"), "--out", str(tmp_path)])
    assert code == 1
    assert "OSError: [Errno 28] No space left on device" in capsys.readouterr().err


def test_cli_keyboard_interrupt_exit_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tweet_classifier.data import prepare as data

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "prepare_data", interrupted)
    assert cli.main(["data", "--config", str(CONFIGS / "airline.yaml")]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize(("raw", "expected"), [("5e-5", 5e-5), ("1E-2", 0.01), ("+2e-3", 0.002), ("3.5e-4", 3.5e-4)])
def test_exponent_floats_without_a_dot_are_numbers(raw, expected):
    # YAML 1.1 reads "5e-5" as a string; a learning rate written that way must still load.
    config = load_config([REPO_ROOT / "configs" / "airline.yaml"], [f"train.learning_rate={raw}"])
    assert config.train.learning_rate == pytest.approx(expected)


# ---- the server's settings: the model's run config, the caller's files and --set, then the environment
def _model_run_config(tmp_path: Path, **sections: dict) -> Path:
    values = load_config([REPO_ROOT / "configs" / "airline.yaml"]).to_dict()
    for name, changes in sections.items():
        values[name].update(changes)
    path = tmp_path / "model" / "run_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(build_config(values), path)
    return path


def test_serving_settings_layer_model_then_files_then_set_then_env(tmp_path) -> None:
    model = _model_run_config(
        tmp_path,
        serve={"concurrency_limit": 3, "canary_batch_size": 4, "drift_window": 500},
        inference={"backend": "onnx-fp32", "parity_rounds": 7},
    )
    serve, inference = load_serving_config(model, env={})
    assert (serve.concurrency_limit, serve.canary_batch_size, inference.backend) == (3, 4, "onnx-fp32")
    caller = tmp_path / "serve.yaml"
    caller.write_text("serve:\n  canary_batch_size: 16\ninference:\n  num_threads: 1\n", encoding="utf-8")
    serve, inference = load_serving_config(
        model,
        [caller],
        ["serve.drift_window=200", "serve.feedback_file=from-set.jsonl"],
        env={"FEEDBACK_FILE": "from-env.jsonl", "FEEDBACK_REPO": "org/feedback"},
    )
    assert serve.concurrency_limit == 3  # the model's
    assert serve.canary_batch_size == 16  # the caller's file
    assert serve.drift_window == 200  # --set
    assert (serve.feedback_file, serve.feedback_repo) == ("from-env.jsonl", "org/feedback")  # env on top
    assert (inference.backend, inference.num_threads) == ("onnx-fp32", 1)
    # No model config at all (a third-party model): the defaults.
    assert load_serving_config(None, env={})[0].concurrency_limit == 2


@pytest.mark.parametrize(
    ("file_text", "overrides", "message"),
    [
        (
            "train:\n  epochs: 2\n",
            [],
            r"serve.yaml: 'train' is not a serving setting; the server reads only the serve: and inference:",
        ),
        ("", ["name=x"], r"--set name=x: 'name' is not a serving setting"),
        (
            "",
            ["inference.parity_rounds=2"],
            r"--set inference.parity_rounds=2: inference.parity_rounds is used only by `tweet-classifier export`",
        ),
        ("", ["serve.concurency_limit=4"], r"unknown config key 'serve.concurency_limit'"),
        ("serve:\n  concurrency_limit: many\n", [], r"config key 'serve.concurrency_limit' has invalid value 'many'"),
        ("inference: fast\n", [], r"inference must be a mapping"),
    ],
)
def test_serving_settings_refuse_what_the_server_would_not_use(tmp_path, file_text, overrides, message) -> None:
    caller = tmp_path / "serve.yaml"
    caller.write_text(file_text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_serving_config(None, [caller], overrides, env={})


def test_a_model_config_this_version_cannot_read_is_skipped_with_a_warning(tmp_path, caplog) -> None:
    model = tmp_path / "run_config.yaml"
    model.write_text("serve:\n  concurrency_limit: 3\n  a_future_setting: 1\ninference:\n  batch_size: 8\n")
    serve, inference = load_serving_config(model, env={})
    assert serve.concurrency_limit == 2
    assert inference.batch_size == 8
    assert "ignoring the serve: section" in caplog.text


def test_cli_version_names_the_command_and_the_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tweet-classifier ")
    assert f"(Python package {cli.DISTRIBUTION})" in out
    assert cli.package_version() != "unknown"  # the dev install is a real distribution
