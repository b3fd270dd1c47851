"""``tweet-classifier predict``: score a file or a Hub dataset in chunks, resumable after a kill.

Input: CSV, TSV, JSONL or parquet (by suffix, or ``--input-format``), a Hub-layout dataset folder or a
Hub dataset id (``datasets.load_dataset``, one ``--split``). Output: the same rows in the same order, in
the format of ``--output``'s suffix, with every input column plus ``label``, one ``prob_<label>`` column
per class (manifest order), ``model_version`` and ``error``. A row that cannot be scored (empty, over the
character cap, not valid in ``--encoding``, not a string) keeps its place with an empty label and the
reason in ``error``; the counts are logged at the end. The output always has as many rows as were read.

Memory stays flat in the input size: the input is read ``--chunk-rows`` rows at a time (pandas' chunked
CSV reader, parquet row batches, the dataset's Arrow batches, JSONL line by line) and each scored chunk
goes to disk before the next is read.

**Resume.** The output is built in ``OUTPUT.parts/``: ``run.json`` (what is being scored: the input's
path, size and mtime or the dataset's fingerprint, the model version, backend and every option that
changes a row) is written once, then one ``part-NNNNNN`` file per chunk, each written under a temporary
name and renamed, so a part that exists is complete. A run started again with the same options counts the
parts already there, skips that many chunks of input and goes on; when the input ends, the parts are
joined into ``OUTPUT`` (temporary name + rename) and the folder is removed. After ``kill -9`` at any
moment no row is lost or written twice. Chunk boundaries are multiples of ``--chunk-rows`` from the first
row, so a resumed run scores exactly the batches an uninterrupted one would: ONNX Runtime's dynamic int8
picks activation scales per batch, and this keeps its probabilities bit-identical too. Parts plus a
manifest rather than appending to one file: an append cut off mid-row would need a repair step, a rename
never leaves half a row.

The package, one job per module: ``formats`` (the file formats and ``BulkError``), ``sources`` (reading
the input in chunks), ``scoring`` (one chunk to its prediction columns, and the counts: what every
engine's worker runs), ``parts`` (the parts folder: ``run.json``, the part and counts files, the join),
``local`` (``predict_file``: the run, scored in this process unless an engine passes its own scorer),
``ray_engine`` (``--engine ray``) and ``command`` (the ``predict`` command line).
"""
