"""Does a plain ``transformers`` user get the app's answers? The model folder's own pipeline
(``pipeline("text-classification", model=DIR, trust_remote_code=True)``, run in a fresh interpreter where
this project cannot be imported) against the app's ``Predictor`` on every raw test tweet.

``scripts/pipeline_parity.py`` runs ``main``; it reads the test split of the folder's own data, so it
sits in ``reports``, above ``data`` and ``inference`` (``inference.portable`` writes the pipeline files
and imports neither).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.inference.export import resolve_run_config
from tweet_classifier.inference.portable import write_portable_pipeline
from tweet_classifier.inference.predictor import Predictor

# What a user with only transformers runs, in a process where the project cannot be imported (so the
# check proves the repo's own files suffice). Prints one JSON line: the refusal without
# ``trust_remote_code``, every text's scores and the tokenizer's maximum length.
_PLAIN_USER_SCRIPT = """
import json, sys
sys.modules["tweet_classifier"] = None
from transformers import pipeline
folder, texts = sys.argv[1], json.load(sys.stdin)
try:
    pipeline("text-classification", model=folder)
except ValueError as error:
    refused = str(error)
else:
    refused = ""
classify = pipeline("text-classification", model=folder, trust_remote_code=True, top_k=None)
results = classify(texts, batch_size=32)
print(json.dumps({"refused": refused, "results": results, "max_length": classify.tokenizer.model_max_length}))
"""


def run_plain_pipeline(folder: str | Path, texts: list[str], modules_cache: str | Path) -> dict[str, Any]:
    """``transformers.pipeline`` on ``folder`` in a fresh interpreter without this project.

    Returns ``{"refused": str, "scores": [{label: probability}], "max_length": int}``; ``modules_cache``
    is where ``transformers`` copies the repo's code (``HF_MODULES_CACHE``).
    """
    env = {**os.environ, "HF_MODULES_CACHE": str(modules_cache), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    # The interpreter runs in modules_cache: a relative folder (`--model models/airline`) would be taken
    # there for a Hub repo id.
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN_USER_SCRIPT, str(Path(folder).resolve())],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(modules_cache),
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"plain transformers pipeline failed on {folder}: {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    scores = [{item["label"]: item["score"] for item in items} for items in answer.pop("results")]
    return {**answer, "scores": scores}


def pipeline_parity(model_dir: str | Path, modules_cache: str | Path, limit: int | None = None) -> dict[str, Any]:
    """The plain pipeline against the app's ``Predictor`` on the raw test tweets of the folder's own data.

    Each text goes to the predictor alone (``predict``, as ``/v1/predict`` sends it) on the reference
    ``torch-fp32`` backend and on the backend ``auto`` serves single texts with.
    """
    folder = Path(model_dir)
    config = resolve_run_config(folder, None, [])
    texts = prepare_data(config).test["raw_text"].astype(str).tolist()[:limit]
    plain = run_plain_pipeline(folder, texts, modules_cache)
    plain_labels = [max(scores, key=scores.__getitem__) for scores in plain["scores"]]
    rows = []
    for backend in ("torch-fp32", "auto"):
        predictor = Predictor.load(folder, backend=backend)
        predictions = [predictor.predict(text) for text in texts]
        agree = sum(p.label == label for p, label in zip(predictions, plain_labels, strict=True))
        worst = max(
            abs(p.scores[label] - scores[label])
            for p, scores in zip(predictions, plain["scores"], strict=True)
            for label in scores
        )
        rows.append(
            {
                "app backend": f"{backend} ({predictor.backend_single})" if backend == "auto" else backend,
                "texts": len(texts),
                "same label": agree,
                "agreement": agree / len(texts),
                "max probability difference": worst,
            }
        )
    return {"rows": rows, "max_length": plain["max_length"], "refused_without_trust": bool(plain["refused"])}


def format_parity_table(result: dict[str, Any]) -> str:
    """``pipeline_parity``'s result as the README's markdown table and the line under it."""
    lines = [
        "| app backend | texts | same label | agreement | max probability difference |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['app backend']} | {row['texts']} | {row['same label']} | {100 * row['agreement']:.2f}% "
            f"| {row['max probability difference']:.2e} |"
        )
    lines.append("")
    lines.append(
        f"Tokenizer `model_max_length`: {result['max_length']}; without `trust_remote_code=True` transformers "
        f"{'refuses to load the pipeline' if result['refused_without_trust'] else 'loaded it anyway'}."
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/pipeline_parity.py``: the table for one model folder, on stdout."""
    parser = argparse.ArgumentParser(description="a plain transformers pipeline against the app's Predictor")
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    write_portable_pipeline(args.model)  # a folder exported before it carried the pipeline gains it
    with tempfile.TemporaryDirectory(prefix="hf-modules-") as modules:
        result = pipeline_parity(args.model, modules, args.limit)
    sys.stdout.write(format_parity_table(result))
    return 0
