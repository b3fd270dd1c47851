"""The results table across runs and the README's generated blocks."""

from __future__ import annotations

import shutil

import pytest
import yaml

from tests.conftest import TINY_LABELS
from tweet_classifier.artifact import ModelManifest, write_json_atomic
from tweet_classifier.reports.results import (
    ResultsError,
    collect_variants,
    load_run,
    splice_readme,
    summarize_runs,
    variants_table,
)


def make_run(tmp_path, tiny_model_dir, folder_name, name, test_f1, per_class, baseline=0.70, seconds=300.0):
    folder = tmp_path / folder_name
    shutil.copytree(tiny_model_dir, folder)
    manifest = ModelManifest.load(folder)
    manifest.training = {"seconds": seconds, "samples_per_second": 100.0, "device": "cpu (2 threads, bf16)"}
    manifest.save(folder)
    (folder / "run_config.yaml").write_text(yaml.safe_dump({"name": name}))
    write_json_atomic(
        folder / "metrics.json",
        {
            "validation": {"macro_f1": test_f1 + 0.01},
            "test": {"macro_f1": test_f1, "per_class": {label: {"f1": f1} for label, f1 in per_class.items()}},
            "baseline": {"test": {"macro_f1": baseline}},
        },
    )
    return folder


def test_seeds_of_one_config_become_one_row_with_mean_and_spread(tmp_path, tiny_model_dir):
    classes = {"negative": 0.9, "neutral": 0.6, "positive": 0.8}
    first = make_run(tmp_path, tiny_model_dir, "a", "airline", 0.80, classes, seconds=240)
    second = make_run(tmp_path, tiny_model_dir, "b", "airline", 0.82, classes | {"neutral": 0.7}, seconds=360)
    table = summarize_runs([first, second])
    row = next(line for line in table.splitlines() if line.startswith("| airline"))
    # mean 81.0, sample std of (80, 82) is 1.414 -> 1.4; gain over the 70.0 baseline is +11.0
    assert "| 2 | 70.0 ± 0.0 | 81.0 ± 1.4 | +11.0 |" in row
    assert "neutral 65.0 ± 7.1" in row
    assert "5.0 min" in row
    assert "cpu (2 threads, bf16)" in table


def test_tweet_eval_rows_show_the_published_leaderboard(tmp_path, tiny_model_dir):
    folder = make_run(tmp_path, tiny_model_dir, "hate", "tweet_eval_hate", 0.5, dict.fromkeys(TINY_LABELS, 0.5))
    row = summarize_runs([folder]).splitlines()[2]
    assert "BERTweet 56.4" in row
    assert "RoBERTa-base 46.6" in row


def test_a_folder_without_metrics_is_a_clear_error(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "untrained")
    with pytest.raises(ResultsError, match="train the model first"):
        load_run(tmp_path / "untrained")
    with pytest.raises(ResultsError, match="no model folders"):
        summarize_runs([])


def test_splice_replaces_blocks_and_reports_missing_files(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "baseline.md").write_text("| a |\n|---|\n| 1 |")
    readme = (
        "intro\n<!-- BEGIN docs/baseline.md -->\nold table\n<!-- END docs/baseline.md -->\n"
        "<!-- BEGIN docs/missing.md -->\nkept\n<!-- END docs/missing.md -->\n"
    )
    updated, missing = splice_readme(readme, tmp_path)
    assert "<!-- BEGIN docs/baseline.md -->\n| a |\n|---|\n| 1 |\n<!-- END docs/baseline.md -->" in updated
    assert "old table" not in updated
    assert "kept" in updated
    assert missing == ["docs/missing.md"]
    assert splice_readme(updated, tmp_path)[0] == updated


def test_variants_are_collected_from_folders_and_compared_with_the_default(tmp_path, tiny_model_dir):
    classes = dict.fromkeys(TINY_LABELS, 0.8)
    root = tmp_path / "variants"
    root.mkdir()
    make_run(root, tiny_model_dir, "default", "airline", 0.82, classes, seconds=34)
    make_run(root, tiny_model_dir, "seed1", "airline", 0.80, classes, seconds=33)
    make_run(root, tiny_model_dir, "lr5e-5", "airline", 0.815, classes, seconds=35)
    (root / "broken.log").write_text("not a model folder")
    rows = collect_variants(root)
    assert set(rows) == {"default", "seed1", "lr5e-5"}
    table = variants_table(rows)
    lines = table.splitlines()
    # The default comes first, then the seeds, then the ideas, in the documented order.
    assert lines[2].startswith("| default |")
    assert lines[3].startswith("| seed1 |")
    assert "| lr5e-5 | learning rate 5e-5 (default 1e-4) | 81.5 | -0.5 | 82.5 | 35 s |" in table
    assert "sample std over 2 seeds" in table
    assert "1.4 points" in table


def test_variants_need_a_default_run_and_at_least_one_folder(tmp_path):
    with pytest.raises(ResultsError, match="no trained variants"):
        collect_variants(tmp_path)
    with pytest.raises(ResultsError, match="no 'default' run"):
        variants_table({"seed1": {}})


def test_plain_text_outputs_are_spliced_as_code_blocks(tmp_path):
    (tmp_path / "speed.txt").write_text("variant  samples/s\nfp32        10.8\n")
    readme = "<!-- BEGIN speed.txt -->\n<!-- END speed.txt -->\n"
    updated, missing = splice_readme(readme, tmp_path)
    assert missing == []
    assert (
        updated
        == "<!-- BEGIN speed.txt -->\n```text\nvariant  samples/s\nfp32        10.8\n```\n<!-- END speed.txt -->\n"
    )
