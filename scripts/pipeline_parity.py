"""Does a plain `transformers` user get the app's answers? The model folder's own pipeline
(`pipeline("text-classification", model=DIR, trust_remote_code=True)`, run in a process without this
project) against the app's Predictor on every raw test tweet.

    .venv/bin/python scripts/pipeline_parity.py --model models/airline

The logic lives in tweet_classifier.inference.portable; this file prints its table.
"""

import argparse
import sys
import tempfile

from tweet_classifier.inference.portable import pipeline_parity, write_portable_pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    write_portable_pipeline(args.model)  # a folder exported before it carried the pipeline gains it
    with tempfile.TemporaryDirectory(prefix="hf-modules-") as modules:
        result = pipeline_parity(args.model, modules, args.limit)
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
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
