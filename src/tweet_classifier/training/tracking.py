"""Weights & Biases tracking that never fails a run and never records a secret.

* ``resolve_mode`` decides online / offline / disabled: ``auto`` goes online only with ``WANDB_API_KEY`` set
  and the server answering within a few seconds; everything else falls back to offline, so a run on a
  laptop without network, in CI or behind a firewall still completes and can be synced later.
* ``TrackingRun`` wraps the wandb run; every call catches W&B exceptions and logs a warning.
* ``GuardedWandbCallback`` is transformers' ``WandbCallback`` with the same guard around every event.
* ``redact_secrets`` strips anything that looks like a credential before a config is logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from transformers.integrations import WandbCallback

from tweet_classifier.config import RunConfig, TrackingConfig

logger = logging.getLogger(__name__)

TrackingMode = Literal["online", "offline", "disabled"]

DEFAULT_WANDB_BASE_URL = "https://api.wandb.ai"
REDACTED = "<redacted>"
# Keys whose values are credentials whatever they hold.
_SECRET_KEY_PATTERN = re.compile(r"(token|secret|password|passwd|api[_-]?key|apikey|credential|auth)", re.IGNORECASE)
# Values that are credentials wherever they appear: Hugging Face tokens, W&B keys (local-... or 40+ hex chars
# after "wandb"), bearer headers, GitHub tokens.
_SECRET_VALUE_PATTERN = re.compile(
    r"(hf_[A-Za-z0-9]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|Bearer\s+\S+|local-[0-9a-f]{40,}|wandb_v1_\S+)"
)


def _wandb_base_url(environ: Mapping[str, str]) -> str:
    return environ.get("WANDB_BASE_URL", DEFAULT_WANDB_BASE_URL).rstrip("/")


def server_reachable(base_url: str, timeout_s: float = 3.0) -> bool:
    """True when anything answers HTTP at ``base_url`` within ``timeout_s`` (an error status still counts)."""
    try:
        request = urllib.request.Request(base_url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        # The server answered, just not with 2xx: it is reachable.
        return True
    except (urllib.error.URLError, OSError, ValueError) as error:
        logger.info("W&B server %s not reachable: %s", base_url, error)
        return False


def resolve_mode(
    config: TrackingConfig,
    environ: Mapping[str, str] | None = None,
    reachable: Callable[[str, float], bool] = server_reachable,
) -> TrackingMode:
    """Decide how to track. Only ``online`` ever touches the network, and only after a bounded check."""
    env = os.environ if environ is None else environ
    env_mode = env.get("WANDB_MODE", "").strip().lower()
    if not config.enabled or config.mode == "disabled" or env_mode == "disabled":
        return "disabled"
    if config.mode == "offline" or (config.mode == "auto" and env_mode in {"offline", "dryrun"}):
        return "offline"
    if not env.get("WANDB_API_KEY"):
        if config.mode == "online":
            logger.warning("tracking.mode is online but WANDB_API_KEY is not set; logging offline (sync later)")
        return "offline"
    base_url = _wandb_base_url(env)
    if not reachable(base_url, config.reachability_timeout_s):
        logger.warning("W&B server %s is not reachable; logging offline (run `wandb sync` later)", base_url)
        return "offline"
    return "online"


def redact_secrets(values: Any) -> Any:
    """A copy of ``values`` with credential-looking keys and values replaced by ``<redacted>``."""
    if isinstance(values, Mapping):
        return {
            key: REDACTED if _SECRET_KEY_PATTERN.search(str(key)) else redact_secrets(value)
            for key, value in values.items()
        }
    if isinstance(values, list | tuple):
        return [redact_secrets(value) for value in values]
    if isinstance(values, str) and _SECRET_VALUE_PATTERN.search(values):
        return _SECRET_VALUE_PATTERN.sub(REDACTED, values)
    return values


class TrackingRun:
    """A W&B run, or nothing; no method raises because of W&B."""

    def __init__(self, run: Any | None = None, mode: TrackingMode = "disabled") -> None:
        self._run = run
        self.mode: TrackingMode = mode if run is not None else "disabled"

    @property
    def active(self) -> bool:
        return self._run is not None

    @property
    def url(self) -> str | None:
        # Offline runs have no URL yet (wandb warns when asked); `wandb sync` gives them one later.
        if self.mode != "online":
            return None
        return self._guard("read the run URL", lambda run: run.url or None)

    @property
    def run_dir(self) -> Path | None:
        """The local run folder (``.../offline-run-*`` or ``.../run-*``)."""
        files_dir = self._guard("read the run folder", lambda run: run.dir)
        return Path(files_dir).parent if files_dir else None

    def _guard(self, what: str, action: Callable[[Any], Any]) -> Any:
        if self._run is None:
            return None
        try:
            return action(self._run)
        except Exception as error:  # W&B must never fail a run: any exception becomes a warning.
            logger.warning("W&B: could not %s (%s: %s); training continues", what, type(error).__name__, error)
            return None

    def log_summary(self, values: Mapping[str, Any]) -> None:
        """Final numbers (``test/macro_f1``...) into the run summary, where dashboards compare runs."""

        def update(run: Any) -> None:
            for key, value in values.items():
                run.summary[key] = value

        self._guard("log the summary", update)

    def log_table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # Deferred: wandb loads only when a run is tracked (about a second of start-up, and optional at run time).
        import wandb

        self._guard(
            f"log table {key}",
            lambda run: run.log({key: wandb.Table(columns=list(columns), data=[list(row) for row in rows])}),
        )

    def log_artifact(
        self,
        name: str,
        artifact_type: str,
        folder: Path,
        aliases: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Every file under ``folder`` as a versioned W&B Artifact (offline: staged in the run, synced later)."""
        # Deferred: wandb loads only when a run is tracked (about a second of start-up, and optional at run time).
        import wandb

        def log(run: Any) -> None:
            artifact = wandb.Artifact(name, type=artifact_type, metadata=redact_secrets(dict(metadata or {})))
            artifact.add_dir(str(folder))
            run.log_artifact(artifact, aliases=list(aliases))

        self._guard(f"log artifact {name}", log)

    def log_plot(self, key: str, make: Callable[[], Any]) -> None:
        """``make()`` builds a ``wandb.plot`` object; a failure there is a warning like any other W&B call."""
        self._guard(f"log plot {key}", lambda run: run.log({key: make()}))

    def set_config(self, values: Mapping[str, Any]) -> None:
        self._guard("update the run config", lambda run: run.config.update(dict(values), allow_val_change=True))

    def finish(self) -> None:
        self._guard("finish the run", lambda run: run.finish())
        self._run = None


def start_run(config: RunConfig, run_name: str | None = None, directory: str | Path | None = None) -> TrackingRun:
    """Start a W&B run for ``config`` (secrets stripped). Returns an inactive run when tracking is off or fails."""
    mode = resolve_mode(config.tracking)
    if mode == "disabled":
        logger.info("W&B tracking disabled")
        return TrackingRun()
    # Deferred: wandb loads only when a run is tracked (about a second of start-up, and optional at run time).
    import wandb

    init_kwargs: dict[str, Any] = {
        "project": config.tracking.project,
        "entity": config.tracking.entity,
        "name": run_name or config.name,
        "config": redact_secrets(config.to_dict()),
        # wandb caches WANDB_DIR in a process-wide singleton at its first run; read it per run instead.
        "dir": str(directory) if directory is not None else os.environ.get("WANDB_DIR"),
        # Never snapshot the environment or code: nothing secret may leave the machine through W&B.
        "settings": wandb.Settings(
            init_timeout=config.tracking.init_timeout_s, save_code=False, silent=True, x_disable_meta=True
        ),
        "reinit": "finish_previous",
    }
    for attempt_mode in dict.fromkeys([mode, "offline"]):
        try:
            run = wandb.init(mode=attempt_mode, **init_kwargs)
        except Exception as error:  # a bad key, a proxy, a full disk: fall back, never fail the run.
            logger.warning("W&B %s init failed (%s: %s)", attempt_mode, type(error).__name__, error)
            continue
        tracking_run = TrackingRun(run, attempt_mode)  # type: ignore[arg-type]
        logger.info("W&B run %s (%s)%s", run.id, attempt_mode, f": {tracking_run.url}" if tracking_run.url else "")
        return tracking_run
    logger.warning("W&B tracking is off for this run: no W&B mode could start")
    return TrackingRun()


def report_to(run: TrackingRun) -> list[str]:
    """The Trainer's ``report_to``, always explicit: transformers' default has changed between releases."""
    return ["wandb"] if run.active else []


def _guarded_event(name: str) -> Callable[..., Any]:
    parent = getattr(WandbCallback, name)

    def event(self: GuardedWandbCallback, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return None
        try:
            return parent(self, *args, **kwargs)
        except Exception as error:  # W&B must never fail a run.
            self.failed = True
            logger.warning("W&B logging failed in %s (%s: %s); training continues without it", name, type(error), error)
            return None

    event.__name__ = name
    return event


class GuardedWandbCallback(WandbCallback):
    """transformers' ``WandbCallback`` whose every event catches W&B errors and then stops logging."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False


for _event_name in (
    "setup",
    "on_train_begin",
    "on_train_end",
    "on_log",
    "on_save",
    "on_predict",
    "on_evaluate",
):
    if hasattr(WandbCallback, _event_name):
        setattr(GuardedWandbCallback, _event_name, _guarded_event(_event_name))


def worst_examples_rows(examples: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [example["text"], example["label"], example["predicted"], round(float(example["confidence"]), 4)]
        for example in examples
    ]


def log_final_results(
    run: TrackingRun,
    metrics: Mapping[str, Any],
    cleaning_report: Mapping[str, Any] | None = None,
    worst_examples: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Final metrics (``test/...``, ``validation/...``, ``baseline/...``) and the evaluation tables."""
    if not run.active:
        return
    test = metrics.get("test", {})
    summary: dict[str, Any] = {}
    for split in ("validation", "test"):
        split_metrics = metrics.get(split, {})
        for name in ("macro_f1", "accuracy", "ece"):
            if name in split_metrics:
                summary[f"{split}/{name}"] = split_metrics[name]
    for label, values in test.get("per_class", {}).items():
        summary[f"test/f1_{label}"] = values["f1"]
    baseline_f1 = metrics.get("baseline", {}).get("test", {}).get("macro_f1")
    if baseline_f1 is not None:
        summary["baseline/test_macro_f1"] = baseline_f1
        if "macro_f1" in test:
            summary["test/macro_f1_minus_baseline"] = test["macro_f1"] - baseline_f1
    run.log_summary(summary)

    if "per_class" in test:
        run.log_table(
            "test/per_class",
            ["label", "precision", "recall", "f1", "support"],
            [
                [label, values["precision"], values["recall"], values["f1"], values["support"]]
                for label, values in test["per_class"].items()
            ],
        )
    if "confusion_matrix" in test:
        matrix = test["confusion_matrix"]
        run.log_table(
            "test/confusion_matrix",
            ["true \\ predicted", *matrix["labels"]],
            [[label, *row] for label, row in zip(matrix["labels"], matrix["matrix"], strict=True)],
        )
    if test.get("slices"):
        run.log_table(
            "test/slices",
            ["slice", "n", "macro_f1", "accuracy", "small"],
            [
                [name, values["n"], values["macro_f1"], values["accuracy"], values["small"]]
                for name, values in test["slices"].items()
            ],
        )
    if baseline_f1 is not None and "macro_f1" in test:
        run.log_table(
            "test/model_vs_baseline",
            ["system", "test_macro_f1"],
            [["tfidf_baseline", baseline_f1], ["model", test["macro_f1"]]],
        )
    if worst_examples:
        run.log_table(
            "test/worst_misclassified",
            ["text", "label", "predicted", "confidence"],
            worst_examples_rows(worst_examples),
        )
    if cleaning_report:
        _log_cleaning_report(run, cleaning_report)


def log_test_predictions(
    run: TrackingRun, frame: Any, probabilities: Any, labels: Sequence[str], max_rows: int = 5_000
) -> None:
    """``wandb.plot.confusion_matrix`` of the test split and a Table of every prediction with its scores
    and the normalized text the model read (at most ``max_rows`` rows, in split order)."""
    if not run.active:
        return
    # Deferred: wandb loads only when a run is tracked (about a second of start-up, and optional at run time).
    import wandb

    predicted = [int(index) for index in probabilities.argmax(axis=1)]
    truth = [labels.index(str(label)) for label in frame["label"]]
    run.log_plot(
        "test/confusion_matrix_plot",
        lambda: wandb.plot.confusion_matrix(y_true=truth, preds=predicted, class_names=list(labels)),
    )
    raw = frame["raw_text"] if "raw_text" in frame else frame["text"]
    rows = [
        [str(raw_text), str(text), str(label), labels[guess], *(round(float(p), 6) for p in scores)]
        for raw_text, text, label, guess, scores in zip(
            raw, frame["text"], frame["label"], predicted, probabilities, strict=True
        )
    ][:max_rows]
    run.log_table("test/predictions", ["raw_text", "text", "label", "predicted", *(f"p_{x}" for x in labels)], rows)


def model_artifact_name(config: RunConfig) -> str:
    """The W&B Artifact every model of ``config`` is a version of (training logs it, ``retrain`` aliases it)."""
    return f"{config.name}-model"


def log_model_and_data(run: TrackingRun, model_dir: Path, prepared: Any, config: RunConfig, metrics: Any) -> None:
    """The model folder (type ``model``) and the cleaned splits with the cleaning report (type
    ``dataset``) as Artifacts aliased ``latest``, so a run, its data and its weights stay linked."""
    if not run.active:
        return
    run.log_artifact(
        model_artifact_name(config),
        "model",
        model_dir,
        aliases=["latest"],
        metadata={"test_macro_f1": metrics.get("test", {}).get("macro_f1"), "folder": model_dir.name},
    )
    with tempfile.TemporaryDirectory(prefix="tweet-classifier-splits-") as folder:
        splits = Path(folder)
        for split in ("train", "validation", "test"):
            frame = getattr(prepared, split)
            columns = [column for column in ("text", "raw_text", "label", "weight") if column in frame]
            frame[columns].to_parquet(splits / f"{split}.parquet", index=False)
        (splits / "cleaning_report.json").write_text(json.dumps(prepared.report.to_dict(), default=str), "utf-8")
        run.log_artifact(
            f"{config.name}-splits",
            "dataset",
            splits,
            aliases=["latest"],
            metadata={split: len(getattr(prepared, split)) for split in ("train", "validation", "test")},
        )


def _log_cleaning_report(run: TrackingRun, report: Mapping[str, Any]) -> None:
    steps = report.get("steps")
    if isinstance(steps, list) and steps:
        columns = sorted({key for step in steps if isinstance(step, Mapping) for key in step if key != "examples"})
        run.log_table(
            "data/cleaning_steps",
            columns,
            [[_cell(step.get(column)) for column in columns] for step in steps if isinstance(step, Mapping)],
        )
    else:
        # One column holds numbers and names alike; W&B tables want one type per column.
        flat = [[key, str(_cell(value))] for key, value in report.items() if key not in {"label_noise"}]
        run.log_table("data/cleaning_report", ["item", "value"], flat)
    noise = report.get("label_noise")
    suspects = noise.get("examples") if isinstance(noise, Mapping) else None
    if isinstance(suspects, list) and suspects:
        columns = sorted({key for item in suspects if isinstance(item, Mapping) for key in item})
        run.log_table(
            "data/label_noise",
            columns,
            [[_cell(item.get(column)) for column in columns] for item in suspects if isinstance(item, Mapping)],
        )


def _cell(value: Any) -> Any:
    """W&B tables take scalars; nested values become compact JSON."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
