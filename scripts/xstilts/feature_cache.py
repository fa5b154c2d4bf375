"""Tokenised features, computed once per model, dataset and encoding settings (rule tokenize_dataset).

Training and prediction jobs read their model inputs from memory-mapped Arrow files written by
rule ``tokenize_dataset`` instead of tokenising the canonical task files themselves: MNLI's
training set is tokenised once per model and settings, not once per job that trains on it.
The features are exactly those ``task_formats.encode`` returns for the same records, settings
and labels (``tests/test_feature_cache.py`` checks every format).

Requests, feature sets and items
    Each call a job made to ``task_formats.encode`` is a *request* (``Request``): the records of
    some sources, concatenated and cut to ``max_examples``, encoded in one format with the
    hyperparameters that format's encoder reads (``TaskFormat.encoding_keys``) and a label inventory.
    ``job_requests`` lists a job's requests from its params (the ``Plan.*_job`` dicts); the Plan
    (which tokenisation jobs exist, which folders a job reads) and the job (what it loads) both
    derive them here, so they cannot disagree.

    A *feature set* is one (dataset, settings) pair: its folder is named by ``settings_key``, a
    digest of the settings (format, encoding hyperparameters, labels), so other settings never
    overwrite it. A set holds *items*, and a request is served by items:

    - pair classification, multiple choice and tagging (``TaskFormat.per_record``): a record's features
      depend on that record alone, so every source file is an item, and a request concatenates
      its sources' items and keeps its first ``max_examples`` examples: the features of encoding
      the concatenation;
    - span QA (the window stride depends on the longest question of all records encoded
      together) and text (language-modelling blocks pack the lines of all sources into one
      stream): a request of exactly one whole file is an item of that file's set; any other
      request (several files, a cut, the LM's held-out lines) is a set of its own, whose settings
      include the item, named after its first source's dataset.

    ``FeatureCache`` serves requests from the folders a job got as inputs; ``EncodeHere`` (jobs
    called without feature folders: tests, interactive use) encodes the same items in memory and
    assembles them the same way.

On disk: ``<folder>/features.json`` (the settings, resolved labels, tokenizer fingerprint, data
provenance and, per item, its spec, example and feature counts and columns) and one
``datasets`` folder per item (``save_to_disk``), read back with ``load_from_disk`` (memory-mapped).
A feature's model inputs are columns under their own names; the bookkeeping of ``Encoded``
(example index, word ids, character offsets, "no answer" position) are the columns
``_example_index``, ``_word_ids``, ``_offsets`` and ``_cls_index``. Loaded features are lazy
sequences over the mapped tables: a row becomes a dict of Python lists when it is read.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from xstilts import formats
from xstilts.features import Encoded
from xstilts.tasks import INTERMEDIATE_TASKS, STAGE_TASKS, TARGET_TRAININGS, TEXT, Source, TrainingTask


def task_format(fmt: str) -> Any:
    """The format's registry entry (``task_formats``, imported on first use: the Snakefile imports
    this module to name feature folders, and should not pay for numpy and the encoders)."""
    from xstilts import task_formats

    return task_formats.task_format(fmt)


#: The +MLM variant's LM data: every this-many-th corpus line is held out for the dev loss (as
#: phase-1 pretraining does), and at most this many held-out lines per language are kept.
LM_DEV_EVERY = 20
LM_DEV_LINES = 200

META = "features.json"
VERSION = 1
KEY_CHARS = 12
_BOOKKEEPING = ("_example_index", "_word_ids", "_offsets", "_cls_index")


class FeatureCacheError(FileNotFoundError):
    """A feature folder that is missing, incomplete or written for other settings; the message says which."""


# --------------------------------------------------------------------------------------------
# Requests: a job's encode calls


@dataclass
class Request:
    """One encode call: the records of ``sources`` (concatenated, the first ``max_examples``)."""

    format: str
    #: The hyperparameters the format's encoder reads (``TaskFormat.encoding_keys``).
    encoding: dict[str, Any]
    #: None (unlabelled formats), the label names in id order, or ``{"collect": sources,
    #: "max_examples": n}``: the labels seen in those training records (CCG).
    labels: Any
    sources: list[Source]
    train: bool = False
    max_examples: int | None = None
    #: Text only: ``{"every": n, "held_out": bool, "max_per_source": m}`` picks lines of each source.
    lines: dict[str, Any] | None = None


def encoding_settings(fmt: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of ``hp`` that determine the features of format ``fmt``."""
    keys = task_format(fmt).encoding_keys
    if not keys:
        raise ValueError(f"format {fmt!r} is not encoded into model features (it trains no head)")
    return {k: hp[k] for k in keys}


def label_spec(task: TrainingTask, hp: dict[str, Any]) -> Any:
    """The labels a task's features are encoded with (see ``Request.labels``)."""
    if not task_format(task.format).labelled:
        return None
    if task.dataset.labels_from_train:
        return {"collect": [_plain_source(s) for s in task.train], "max_examples": hp.get("max_train_examples") or None}
    return list(task.dataset.labels)


def task_requests(task: TrainingTask, hp: dict[str, Any],
                  dev_sources: Sequence[Source]) -> tuple[Request, list[Request]]:
    """(training request, one request per dev source) of a training task (``pipeline._task_data``)."""
    encoding, labels = encoding_settings(task.format, hp), label_spec(task, hp)
    train = Request(task.format, encoding, labels, list(task.train), train=True,
                    max_examples=hp.get("max_train_examples") or None)
    return train, [Request(task.format, encoding, labels, [s]) for s in dev_sources]


def lm_requests(variant: dict[str, Any]) -> tuple[Request, Request]:
    """(training, dev) requests of the +MLM variant's language modelling on the corpus languages."""
    encoding = encoding_settings(TEXT, variant["hparams"])
    sources = [Source("mlm_corpus", "train", lang) for lang in variant["languages"]]
    train = Request(TEXT, encoding, None, sources, train=True,
                    lines={"every": LM_DEV_EVERY, "held_out": False, "max_per_source": None})
    dev = Request(TEXT, encoding, None, sources,
                  lines={"every": LM_DEV_EVERY, "held_out": True, "max_per_source": LM_DEV_LINES})
    return train, dev


def prediction_request(job: dict[str, Any], target: str, lang: str) -> Request:
    """The test data of one target language, encoded as the model was trained (``pipeline.predict_target``)."""
    task = TARGET_TRAININGS[job["training"]]
    return Request(task.format, encoding_settings(task.format, job["hparams"]), label_spec(task, job["hparams"]),
                   [Source(target, "test", lang)])


def intermediate_trainings(job: dict[str, Any]) -> list[TrainingTask]:
    """The training tasks of an intermediate job: its tasks, or its variant's task on the variant's sources.

    A translated variant trains its task on the translations (and the English original if asked),
    selected on the task's English dev as its plain run."""
    variant = job.get("variant")
    if variant is None:
        return [INTERMEDIATE_TASKS[n] for n in job["tasks"]]
    base = INTERMEDIATE_TASKS[variant["task"]]
    return [TrainingTask(base.name, base.format, tuple(_sources(variant["train"])), tuple(_sources(variant["dev"])),
                         base.metric)]


def stage_training(task: TrainingTask, stage: str) -> TrainingTask:
    """An English stage before a target training (XCOPA's SIQA): the stage's data on the target's head."""
    spec = STAGE_TASKS[stage]
    return TrainingTask(task.name, spec.format, spec.train, spec.dev, spec.metric)


def job_requests(kind: str, job: dict[str, Any]) -> list[Request]:
    """Every request of one job: ``kind`` intermediate, target or predict, ``job`` its params."""
    out: list[Request] = []
    if kind == "intermediate":
        for task in intermediate_trainings(job):
            train, dev = task_requests(task, job["task_hparams"][task.name], task.dev)
            out += [train, *dev]
        variant = job.get("variant")
        if variant is not None and variant["name"] == "mlm":
            out += lm_requests(variant)
    elif kind == "target":
        task = TARGET_TRAININGS[job["training"]]
        train, dev = task_requests(task, job["hparams"], _sources(job["dev_sources"]))
        out += [train, *dev]
        for stage in job.get("stages", []):
            spec = stage_training(task, stage["task"])
            train, dev = task_requests(spec, stage["hparams"], spec.dev)
            out += [train, *dev]
    elif kind == "predict":
        out += [prediction_request(job, t, lang) for t, langs in job["predict"].items() for lang in langs]
    else:
        raise ValueError(f"unknown job kind {kind!r}: intermediate, target or predict")
    return out


# --------------------------------------------------------------------------------------------
# Feature sets and items


def parts(request: Request) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(dataset, settings, item) of every item serving ``request``, in concatenation order."""
    settings = {"format": request.format, "encoding": dict(request.encoding), "labels": request.labels, "item": None}
    if task_format(request.format).per_record:
        return [(s.dataset, settings, _item([s])) for s in request.sources]
    item = _item(request.sources, task_format(request.format).train_flag and request.train, request.max_examples,
                 request.lines)
    if len(request.sources) == 1 and request.max_examples is None and request.lines is None:
        return [(request.sources[0].dataset, settings, item)]
    return [(request.sources[0].dataset, {**settings, "item": item}, item)]


def settings_key(settings: dict[str, Any]) -> str:
    """The folder name of a feature set: a digest of its settings."""
    return hashlib.sha256(_canonical(settings).encode("utf-8")).hexdigest()[:KEY_CHARS]


def item_name(item: dict[str, Any]) -> str:
    """The folder of an item within its set: ``<split>.<lang>`` (``.training``: span QA's training windows,
    with answer positions), else ``combined``."""
    if len(item["sources"]) == 1 and item["max_examples"] is None and item["lines"] is None:
        _, split, lang = item["sources"][0]
        return f"{split}.{lang}" + (".training" if item["train"] else "")
    return "combined"


def feature_sets(requests: Sequence[Request]) -> dict[tuple[str, str], dict[str, Any]]:
    """(dataset, settings key) -> the tokenize_dataset job writing that set: every item the requests need."""
    sets: dict[tuple[str, str], dict[str, Any]] = {}
    for request in requests:
        for dataset, settings, item in parts(request):
            key = settings_key(settings)
            entry = sets.setdefault((dataset, key), {"dataset": dataset, "key": key, "settings": settings, "items": {}})
            entry["items"][_canonical(item)] = item
    for entry in sets.values():
        entry["items"] = sorted(entry["items"].values(), key=lambda i: (item_name(i), _canonical(i)))
    return dict(sorted(sets.items()))


def feature_inputs(requests: Sequence[Request]) -> list[tuple[str, str]]:
    """(dataset, settings key) of every feature set the requests read, sorted."""
    return sorted({(dataset, settings_key(settings)) for r in requests for dataset, settings, _ in parts(r)})


def job_datasets(job: dict[str, Any]) -> list[str]:
    """The datasets a tokenize_dataset job reads: its items' sources and the records its labels come from."""
    labels = job["settings"]["labels"]
    sources = [s for item in job["items"] for s in item["sources"]]
    if isinstance(labels, dict):
        sources += labels["collect"]
    return sorted({d for d, _, _ in sources})


def _item(sources: Sequence[Source], train: bool = False, max_examples: int | None = None,
          lines: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"sources": [_plain_source(s) for s in sources], "train": bool(train), "max_examples": max_examples,
            "lines": lines}


def _plain_source(source: Source) -> list[str]:
    return [source.dataset, source.split, source.lang]


def _sources(rows: Sequence[Sequence[str]]) -> list[Source]:
    return [Source(dataset, split, lang) for dataset, split, lang in rows]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Encoding items (rule tokenize_dataset, and EncodeHere)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Digest of everything about a tokenizer that can change its features.

    The backend's whole state (normaliser, pre-tokeniser, model and vocabulary, post-processor
    with the pair template, added tokens) without the truncation and padding of its last call
    (a saved tokenizer keeps those: they differ between a model folder whose tokenizer encoded
    data and one whose did not), plus the special tokens, model inputs and padding and
    truncation sides. Saving and loading a tokenizer (phase 1 to phase 2 to the target model)
    leaves it unchanged."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    extra = {"class": type(tokenizer).__name__, "special": tokenizer.special_tokens_map,
             "inputs": list(tokenizer.model_input_names), "padding_side": tokenizer.padding_side,
             "truncation_side": tokenizer.truncation_side}
    text = json.dumps([state, extra], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def resolve_labels(fmt: str, labels: Any, data_root: str | Path) -> tuple[str, ...]:
    """The label names of a set's settings, reading the training records for collected labels."""
    if labels is None:
        return ()
    if isinstance(labels, dict):
        records = read_records(labels["collect"], data_root, labels["max_examples"])
        return tuple(task_format(fmt).collect_labels(records))
    return tuple(labels)


def read_records(sources: Sequence[Sequence[str]], data_root: str | Path, max_examples: int | None = None) -> list[Any]:
    """The canonical records of ``sources`` (dataset, split, lang), concatenated, the first ``max_examples``."""
    records: list[Any] = []
    for dataset, split, lang in sources:
        records += formats.read_dataset(data_root, dataset, lang, split)
    return records[:max_examples] if max_examples else records


def read_lines(sources: Sequence[Sequence[str]], data_root: str | Path, lines: dict[str, Any]) -> list[str]:
    """Text lines of each source picked by ``lines`` (every n-th held out, or the others), concatenated."""
    out: list[str] = []
    for dataset, split, lang in sources:
        text = formats.read_lines(formats.data_files(data_root, dataset, lang, split)["text"])
        picked = [line for i, line in enumerate(text) if (i % lines["every"] == 0) == lines["held_out"]]
        out += picked[: lines["max_per_source"]] if lines["max_per_source"] is not None else picked
    return out


def item_files(item: dict[str, Any], data_root: str | Path) -> list[str]:
    """The canonical files an item reads."""
    if item["lines"] is not None:
        return [formats.data_files(data_root, d, lang, s)["text"] for d, s, lang in item["sources"]]
    return [formats.data_file(data_root, d, lang, s) for d, s, lang in item["sources"]]


def encode_item(settings: dict[str, Any], labels: tuple[str, ...], item: dict[str, Any], tokenizer: Any,
                data_root: str | Path) -> tuple[Encoded, int]:
    """(features, number of examples) of one item: ``task_formats.encode`` of its records."""
    from xstilts.task_formats import encode

    if item["lines"] is not None:
        records: list[Any] = read_lines(item["sources"], data_root, item["lines"])
    else:
        records = read_records(item["sources"], data_root, item["max_examples"])
    # The encoders read exactly their encoding_keys of the hyperparameters (a missing one is a KeyError).
    encoded = encode(settings["format"], tokenizer, records, dict(settings["encoding"]), labels, train=item["train"])
    return encoded, len(records)


def write_feature_set(job: dict[str, Any], tokenizer: Any, data_root: str | Path,
                      out_dir: str | Path) -> dict[str, Any]:
    """Rule tokenize_dataset: every item of one feature set, as Arrow folders and ``features.json``.

    ``job``: ``{"dataset", "key", "settings", "items"}`` (an entry of ``feature_sets``)."""
    import datasets

    from xstilts.manifest import known_sha256

    datasets.disable_progress_bars()
    settings = job["settings"]
    if settings_key(settings) != job["key"]:
        raise ValueError(f"feature set {job['dataset']}/{job['key']}: its settings digest to {settings_key(settings)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = resolve_labels(settings["format"], settings["labels"], data_root)
    items, files = [], []
    for item in job["items"]:
        encoded, examples = encode_item(settings, labels, item, tokenizer, data_root)
        name = item_name(item)
        columns = _columns(encoded)
        datasets.Dataset.from_dict(columns).save_to_disk(str(out / name))
        items.append({"name": name, "item": item, "examples": examples, "features": len(encoded.features),
                      "columns": [c for c in columns if c not in _BOOKKEEPING]})
        files += item_files(item, data_root)
    if isinstance(settings["labels"], dict):
        files += [formats.data_file(data_root, d, lang, s) for d, s, lang in settings["labels"]["collect"]]
    meta = {"version": VERSION, "dataset": job["dataset"], "key": job["key"], "settings": settings,
            "labels": list(labels), "tokenizer": tokenizer_fingerprint(tokenizer), "items": items,
            "inputs": {f: known_sha256(f) or formats.sha256(f) for f in sorted(set(files))}}
    (out / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def _columns(encoded: Encoded) -> dict[str, list[Any]]:
    keys = list(encoded.features[0]) if encoded.features else ["input_ids"]
    columns: dict[str, list[Any]] = {k: [f[k] for f in encoded.features] for k in keys}
    columns["_example_index"] = list(encoded.example_index)
    if encoded.word_ids:
        columns["_word_ids"] = list(encoded.word_ids)
    if encoded.offsets:
        columns["_offsets"] = [[list(o) if o is not None else None for o in row] for row in encoded.offsets]
    if encoded.cls_index:
        columns["_cls_index"] = list(encoded.cls_index)
    return columns


# --------------------------------------------------------------------------------------------
# Serving requests


class Features:
    """Where a job's requests are served from: ``encoded`` and ``labels`` of a ``Request``."""

    def labels(self, request: Request) -> tuple[str, ...]:
        """The label names of the request's features (in id order)."""
        found = {self._labels(dataset, settings) for dataset, settings, _ in parts(request)}
        if len(found) != 1:
            raise FeatureCacheError(f"the sources {request.sources} of one request were encoded with different "
                                    f"labels: {sorted(found)}")
        return found.pop()

    def encoded(self, request: Request) -> Encoded:
        """The request's features: its items concatenated, cut to its first ``max_examples`` examples."""
        loaded = [self._item(dataset, settings, item) for dataset, settings, item in parts(request)]
        cut = request.max_examples if task_format(request.format).per_record else None
        return _assemble(loaded, cut)

    def _labels(self, dataset: str, settings: dict[str, Any]) -> tuple[str, ...]:
        raise NotImplementedError

    def _item(self, dataset: str, settings: dict[str, Any], item: dict[str, Any]) -> tuple[Encoded, int]:
        raise NotImplementedError


class EncodeHere(Features):
    """Encode in memory, item by item as rule tokenize_dataset does (jobs run without feature folders)."""

    def __init__(self, tokenizer: Any, data_root: str | Path) -> None:
        self.tokenizer, self.data_root = tokenizer, data_root
        self._resolved: dict[str, tuple[str, ...]] = {}

    def _labels(self, dataset: str, settings: dict[str, Any]) -> tuple[str, ...]:
        key = settings_key(settings)
        if key not in self._resolved:
            self._resolved[key] = resolve_labels(settings["format"], settings["labels"], self.data_root)
        return self._resolved[key]

    def _item(self, dataset: str, settings: dict[str, Any], item: dict[str, Any]) -> tuple[Encoded, int]:
        return encode_item(settings, self._labels(dataset, settings), item, self.tokenizer, self.data_root)


class FeatureCache(Features):
    """The feature folders a job got as inputs (rule tokenize_dataset's outputs), memory-mapped.

    Each folder says which set it holds (``features.json``); a request whose set or item is not
    among them, a set written for other settings or with another tokenizer, or an unreadable
    item is a ``FeatureCacheError`` naming the folder and the rule that writes it."""

    def __init__(self, folders: Sequence[str | Path], tokenizer: Any = None) -> None:
        self.tokenizer = tokenizer
        self._fingerprint: str | None = None
        self.sets: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
        for folder in map(Path, folders):
            meta = _read_meta(folder)
            self.sets[(meta["dataset"], meta["key"])] = (folder, meta)

    def folders(self) -> list[Path]:
        return [folder for folder, _ in self.sets.values()]

    def _set(self, dataset: str, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        key = settings_key(settings)
        if (dataset, key) not in self.sets:
            have = ", ".join(f"{d}/{k}" for d, k in sorted(self.sets)) or "none"
            raise FeatureCacheError(
                f"no feature set {dataset}/{key} among this job's feature folders (it has: {have}); rule "
                f"tokenize_dataset writes it, and the job's rule should list it as an input (rules/common.smk "
                f"feature_dirs). Settings: {_canonical(settings)}")
        folder, meta = self.sets[(dataset, key)]
        if _canonical(meta["settings"]) != _canonical(settings):
            raise FeatureCacheError(f"{folder}: its features.json holds the settings {_canonical(meta['settings'])}, "
                                    f"not {_canonical(settings)}; {_REBUILD.format(folder=folder)}")
        if self.tokenizer is not None:
            if self._fingerprint is None:
                self._fingerprint = tokenizer_fingerprint(self.tokenizer)
            if meta["tokenizer"] != self._fingerprint:
                raise FeatureCacheError(
                    f"{folder} was tokenised with another tokenizer (fingerprint {meta['tokenizer']}) than this job's "
                    f"model (fingerprint {self._fingerprint}); {_REBUILD.format(folder=folder)}")
        return folder, meta

    def _labels(self, dataset: str, settings: dict[str, Any]) -> tuple[str, ...]:
        return tuple(self._set(dataset, settings)[1]["labels"])

    def _item(self, dataset: str, settings: dict[str, Any], item: dict[str, Any]) -> tuple[Encoded, int]:
        import datasets

        folder, meta = self._set(dataset, settings)
        entry = next((e for e in meta["items"] if _canonical(e["item"]) == _canonical(item)), None)
        if entry is None:
            raise FeatureCacheError(f"{folder} holds no item {_canonical(item)} (its items: "
                                    f"{', '.join(e['name'] for e in meta['items'])}); {_REBUILD.format(folder=folder)}")
        path = folder / entry["name"]
        try:
            table = datasets.load_from_disk(str(path)).data.table
        except Exception as e:  # noqa: BLE001 - any unreadable Arrow folder gets the same advice
            raise FeatureCacheError(f"{path}: cannot read the features ({type(e).__name__}: {e}); "
                                    f"{_REBUILD.format(folder=folder)}") from None
        if table.num_rows != entry["features"]:
            raise FeatureCacheError(f"{path}: {table.num_rows} features, its features.json says {entry['features']}; "
                                    f"{_REBUILD.format(folder=folder)}")
        return _table_encoded(table, entry["columns"]), entry["examples"]


_REBUILD = ("rule tokenize_dataset rebuilds it: run `snakemake --forcerun {folder}` (with your usual options), or "
            "delete {folder} and run snakemake again")


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FeatureCacheError(f"{folder}: no feature set here ({META} is missing); "
                                f"{_REBUILD.format(folder=folder)}") from None
    except ValueError as e:
        raise FeatureCacheError(f"{path} is damaged ({e}); {_REBUILD.format(folder=folder)}") from None
    if meta.get("version") != VERSION:
        raise FeatureCacheError(f"{path}: feature set version {meta.get('version')}, this xstilts reads "
                                f"version {VERSION}; {_REBUILD.format(folder=folder)}")
    return meta


# --------------------------------------------------------------------------------------------
# Lazy columns over memory-mapped tables, and assembling items into a request's features


class Column(Sequence[Any]):
    """One value per feature, read from (memory-mapped) Arrow tables when indexed.

    ``columns`` a list: each value is a dict of those columns (a feature's model inputs); a
    string: the value of that column, with character offsets as tuples. The values are those of
    ``tables`` one after the other (the items of a request)."""

    def __init__(self, tables: Sequence[Any], columns: list[str] | str) -> None:
        names = columns if isinstance(columns, list) else [columns]
        self.tables = [t.select(names) for t in tables if t.num_rows]
        self.columns = columns
        self.starts = [0]
        for table in self.tables:
            self.starts.append(self.starts[-1] + table.num_rows)

    def __len__(self) -> int:
        return self.starts[-1]

    def _convert(self, rows: list[dict[str, Any]]) -> list[Any]:
        if isinstance(self.columns, list):
            return rows
        values = [row[self.columns] for row in rows]
        if self.columns == "_offsets":
            return [[tuple(o) if o is not None else None for o in value] for value in values]
        return values

    def _rows(self, start: int, stop: int) -> list[Any]:
        rows: list[dict[str, Any]] = []
        part = bisect.bisect_right(self.starts, start) - 1
        while start < stop:
            table, offset = self.tables[part], self.starts[part]
            n = min(stop, self.starts[part + 1]) - start
            rows += table.slice(start - offset, n).to_pylist()
            start += n
            part += 1
        return self._convert(rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._rows(start, max(start, stop))
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"feature {index} of {n}")
        return self._rows(index, index + 1)[0]

    def __iter__(self) -> Iterator[Any]:
        for table in self.tables:
            for batch in table.to_batches(max_chunksize=1024):
                yield from self._convert(batch.to_pylist())

    def head(self, n: int) -> "Column":
        """The first ``n`` values."""
        tables, left = [], n
        for table in self.tables:
            tables.append(table.slice(0, min(left, table.num_rows)))
            left -= tables[-1].num_rows
        return Column(tables, self.columns)

    @staticmethod
    def concat(columns: Sequence["Column"]) -> "Column":
        """The values of ``columns`` one after the other (no copy)."""
        return Column([t for c in columns for t in c.tables], columns[0].columns)


def _table_encoded(table: Any, feature_columns: list[str]) -> Encoded:
    names = set(table.column_names)
    return Encoded(
        Column([table], list(feature_columns)),
        table.column("_example_index").to_pylist(),
        Column([table], "_word_ids") if "_word_ids" in names else [],
        Column([table], "_offsets") if "_offsets" in names else [],
        table.column("_cls_index").to_pylist() if "_cls_index" in names else [],
    )


def _concat(values: Sequence[Sequence[Any]]) -> Any:
    values = [v for v in values if len(v)]  # an item without features adds nothing (nor its columns)
    if values and all(isinstance(v, Column) for v in values):
        return Column.concat(values)
    return [x for v in values for x in v]


def _head(values: Sequence[Any], n: int) -> Any:
    return values.head(n) if isinstance(values, Column) else list(values[:n])


def _assemble(loaded: Sequence[tuple[Encoded, int]], max_examples: int | None) -> Encoded:
    """Items (features, examples) concatenated into one request's features; example indices follow."""
    if len(loaded) == 1:
        encoded = loaded[0][0]
    else:
        starts, total = [], 0
        for _, examples in loaded:
            starts.append(total)
            total += examples
        encoded = Encoded(
            _concat([e.features for e, _ in loaded]),
            [i + start for (e, _), start in zip(loaded, starts) for i in e.example_index],
            _concat([e.word_ids for e, _ in loaded]) if any(len(e.word_ids) for e, _ in loaded) else [],
            _concat([e.offsets for e, _ in loaded]) if any(len(e.offsets) for e, _ in loaded) else [],
            [i for e, _ in loaded for i in e.cls_index],
        )
    if max_examples is None:
        return encoded
    # Example indices never decrease, so the first max_examples examples are a prefix of the features.
    n = bisect.bisect_left(encoded.example_index, max_examples)
    if n == len(encoded.example_index):
        return encoded
    return Encoded(_head(encoded.features, n), encoded.example_index[:n],
                   _head(encoded.word_ids, n) if len(encoded.word_ids) else [],
                   _head(encoded.offsets, n) if len(encoded.offsets) else [], encoded.cls_index[:n])


def folder_files(folders: Sequence[str | Path]) -> list[str]:
    """Every file of the feature folders (for a job's provenance record)."""
    files = []
    for folder in folders:
        files += [str(p) for p in sorted(Path(folder).rglob("*")) if p.is_file() and not p.name.startswith(".")]
    return files
