"""The +MLM variant's real corpus: Wikipedia parquet shards from the hub -> ``mlm_corpus``.

Download (rule ``download_corpus``, a localrule): one language of a hub corpus
(``sources.HUB_CORPORA``) at its pinned commit; the file pattern is resolved against the hub's
file list at that commit and every file is verified against the hub's metadata
(``download.download_hub_dataset``), its sha256 recorded in ``source.json``.

Conversion (rule ``convert_dataset`` for ``mlm_corpus``, through ``converters.convert``): every
file's sha256 is checked again against ``source.json`` (whose repository and commit must be the
job's), then the ``text`` column of each article is cut into lines:

1. paragraphs (the article's lines), then sentences: a split after end punctuation followed by
   whitespace (``. ! ?``, the danda ``।`` ``॥``, Urdu ``۔``, Arabic ``؟``, Burmese ``။``), and
   after CJK full-width ``。！？`` with or without whitespace;
2. whitespace normalised (every run of Unicode whitespace -> one space, trimmed);
3. kept if ``MIN_CHARS`` to ``MAX_CHARS`` characters long and holding a letter (not a bare
   number, heading rule or table residue); duplicates dropped.

Sampling. Each kept line gets a key, the seeded keyed hash (BLAKE2b) of its text; a language's
corpus is the ``sentences_per_language`` lines with the smallest keys, written in key order. The
sample so depends on the set of lines, the seed and nothing else: not on file or row order, and
never on Python's hash seed; a different seed gives a different sample. Memory is bounded by the
sample size (a heap of N lines), not by the shard's size. A language with fewer usable lines
than N is an error that says how many it has.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from xstilts.converters import ConversionError

log = logging.getLogger("xstilts.corpus")

#: Lines shorter than this (characters) are headings, captions or fragments; longer than MAX_CHARS
#: are unsplit run-on paragraphs (tables, lists, scripts without sentence punctuation).
MIN_CHARS = 20
MAX_CHARS = 1000
#: Parquet rows read at a time.
BATCH_ROWS = 1024

_SENTENCE_END = re.compile(r"(?<=[.!?।॥۔؟။])\s+|(?<=[。！？])\s*")


# --------------------------------------------------------------------------------------------
# Download


def download(job: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Rule download_corpus: the files of one language at the pinned commit, verified."""
    from xstilts import download as hub

    return hub.download_hub_dataset(job["repo_id"], job["revision"], job["patterns"], out_dir)


# --------------------------------------------------------------------------------------------
# Text -> lines


def lines_of(text: str) -> Iterator[str]:
    """The usable lines of one article: paragraphs, sentences, whitespace normalised, filtered."""
    for paragraph in text.splitlines():
        for piece in _SENTENCE_END.split(paragraph):
            line = " ".join(piece.split())
            if MIN_CHARS <= len(line) <= MAX_CHARS and any(c.isalpha() for c in line):
                yield line


def _key(line: str, seed: int) -> int:
    digest = hashlib.blake2b(line.encode("utf-8"), digest_size=16, key=str(seed).encode("ascii")).digest()
    return int.from_bytes(digest, "big")


def sample(lines: Iterable[str], n: int, seed: int) -> tuple[list[str], bool]:
    """The ``n`` distinct lines with the smallest seeded keys, in key order, and whether there
    were at least ``n`` distinct lines (if not, the list holds every distinct line)."""
    heap: list[tuple[int, str]] = []  # (-key, line): the largest kept key on top
    kept: set[int] = set()
    for line in lines:
        key = _key(line, seed)
        if key in kept:
            continue  # a duplicate of a kept line (an evicted line's duplicate cannot re-enter)
        if len(heap) < n:
            heapq.heappush(heap, (-key, line))
            kept.add(key)
        elif key < -heap[0][0]:
            evicted, _ = heapq.heapreplace(heap, (-key, line))
            kept.discard(-evicted)
            kept.add(key)
    return [line for _, line in sorted(((-k, line) for k, line in heap))], len(heap) >= n


# --------------------------------------------------------------------------------------------
# Conversion


def _verified_files(folder: Path, settings: dict[str, Any], lang: str) -> list[Path]:
    """The parquet files of one language's download, re-verified against its ``source.json``."""
    from xstilts.download import DownloadError, verify_file

    record_path = folder / "source.json"
    fix = f"delete {folder} and run the workflow again (rule download_corpus fetches it anew)"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConversionError(f"{record_path}: unreadable ({e.__class__.__name__}: {e}); {fix}") from None
    if (record.get("repo_id"), record.get("revision")) != (settings["repo_id"], settings["revision"]):
        raise ConversionError(f"{folder}: downloaded from {record.get('repo_id')}@{record.get('revision')}, but the "
                              f"pin is {settings['repo_id']}@{settings['revision']}; {fix}")
    names = sorted(n for n in record.get("sha256", {}) if fnmatch.fnmatch(n, settings["files"][lang]))
    if not names:
        raise ConversionError(f"{record_path}: no file matches {settings['files'][lang]!r}; {fix}")
    for name in names:
        try:
            verify_file(folder / name, record["sha256"][name])
        except DownloadError as e:
            raise ConversionError(f"{e} (rule download_corpus writes it)") from None
    return [folder / name for name in names]


def _texts(path: Path, column: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise ConversionError(f"{path}: not a readable parquet file ({e.__class__.__name__}: {e})") from None
    names = parquet.schema_arrow.names
    if column not in names:
        raise ConversionError(f"{path}: no column {column!r} (columns: {names})")
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=[column]):
        for text in batch.column(0).to_pylist():
            if text:
                yield text


def read_language(files: list[Path], column: str) -> Iterator[str]:
    """Every usable line of one language's files (file order does not affect the sample)."""
    for path in files:
        for text in _texts(path, column):
            yield from lines_of(text)


def reader(settings: dict[str, Any]):
    """A ``converters`` reader (raw folder, layout) -> payloads for a hub corpus.

    ``settings`` is ``Plan.convert_job(...)["corpus"]`` plus ``folders``: the download folders,
    one per language, each named by its language (``resources/corpus/<corpus>/<lang>``).
    """

    def read(_raw: Any, layout: dict[str, list[str]]) -> dict[tuple[str, str], list[str]]:
        folders = {Path(f).name: Path(f) for f in settings["folders"]}
        n, seed = settings["sentences_per_language"], settings["seed"]
        out = {}
        for split, langs in layout.items():
            for lang in langs:
                if lang not in folders:
                    raise ConversionError(f"{settings['source']}: no download folder for language {lang!r} "
                                          f"(got {sorted(folders)}); rule download_corpus writes it")
                files = _verified_files(folders[lang], settings, lang)
                lines, enough = sample(read_language(files, settings["column"]), n, seed)
                if not enough:
                    raise ConversionError(
                        f"{settings['source']} ({lang}): only {len(lines)} usable distinct lines in "
                        f"{', '.join(p.name for p in files)}, fewer than the {n} sentences per language asked for; "
                        f"lower intermediate.variants.mlm.sentences_per_language to at most {len(lines)}")
                log.info("%s (%s): %d lines sampled (seed %d)", settings["source"], lang, len(lines), seed)
                out[(split, lang)] = lines
        return out

    return read
