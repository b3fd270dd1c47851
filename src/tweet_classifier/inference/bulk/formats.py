"""The file formats ``predict`` reads and writes, and the error every part of it raises."""

from __future__ import annotations

import re

from tweet_classifier.errors import TweetClassifierError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t"}
# Bytes the input encoding cannot decode are read as these lone surrogates (errors="surrogateescape"):
# the row is reported as undecodable and the same bytes are written back to a CSV/TSV/JSONL output.
ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


class BulkError(TweetClassifierError):
    """The input, the output or a previous run's parts cannot be used as asked."""
