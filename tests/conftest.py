"""Shared fixtures: the repository root, the demo config, and a small synthetic benchmark."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Tests never reach the Hugging Face hub: a stray hub id fails at once instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


#: What importing sentence-transformers sets in os.environ (measured with its pinned version).
LIBRARY_SET_ENV = ("KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK", "TORCHINDUCTOR_CACHE_DIR")


@pytest.fixture(scope="session", autouse=True)
def worker_template(tmp_path_factory):
    """A template worker for this test process (xstilts.worker, "Templates"): the Snakemake runs
    the tests start fork their workers from it instead of importing torch, transformers and
    sentence-transformers again, about 6 CPU-seconds for each of some 25 runs. A run it cannot
    serve starts a worker of its own, as without it; tests/test_worker.py tests both ways.

    The template ignores variables that differ between the runs of one process and that no
    import reads differently: pytest's per-test variable, and those that sentence-transformers'
    import sets in this process once a test has imported it (torch's inductor cache folder,
    Intel OpenMP switches that torch's GNU OpenMP ignores): the template's own import sets them
    to the same values. Any other difference makes a run import in a worker of its own."""
    from xstilts import worker

    if worker.why_not() or os.environ.get(worker.TEMPLATE_ENV):
        yield None
        return
    handle = worker.start_template(tmp_path_factory.getbasetemp() / "worker-template.log", ROOT / "scripts",
                                   ignore_env=("PYTEST_CURRENT_TEST", *LIBRARY_SET_ENV))
    yield handle
    handle.stop()


@pytest.fixture(scope="session", autouse=True)
def snakemake_server(tmp_path_factory):
    """The fork server for this test process's Snakemake runs (tests/snakemake_server.py): it
    imports Snakemake and its plugins once, at the first run, instead of once per run. Runs
    differing from it in what sentence-transformers' import sets (see ``worker_template``)
    are served too: Snakemake's imports read none of those variables."""
    import snakemake_server

    snakemake_server.enable(tmp_path_factory.getbasetemp() / "snakemake-server", ROOT, ignore_env=LIBRARY_SET_ENV)
    yield
    snakemake_server.stop()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-model tests (use with pytest.mark.usefixtures).

    A 32-wide model gains nothing from threads, and on a busy 2-core machine two spinning OpenMP
    threads make each tiny matmul 50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def raw_config() -> dict:
    with open(ROOT / "config.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture()
def config(raw_config) -> dict:
    return copy.deepcopy(raw_config)


@pytest.fixture(scope="session")
def demo_exp(raw_config) -> dict:
    from xstilts.config import resolve

    return resolve(copy.deepcopy(raw_config))


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory) -> Path:
    """A small synthetic benchmark (English + German/Chinese test sets) for model-level tests."""
    from xstilts import synthetic

    root = tmp_path_factory.mktemp("tiny_bench")
    layout = {
        "mlm_corpus": {"train": ["en", "de", "zh"]},
        "mnli": {"train": ["en"], "dev": ["en"]},
        "xnli": {"test": ["en", "de", "zh"]},
        "squad_v1": {"train": ["en"], "dev": ["en"]},
        "squad_v2": {"train": ["en"], "dev": ["en"]},
        "udpos": {"train": ["en"], "dev": ["en"], "test": ["de"]},
        "ccg": {"train": ["en"], "dev": ["en"]},
        "hellaswag": {"train": ["en"], "dev": ["en"]},
    }
    sizes = {name: {split: 60 for split in splits} for name, splits in layout.items()}
    sizes["mlm_corpus"] = {"train": 300}
    synthetic.generate(synthetic.SyntheticSpec(seed=11, layout=layout, sizes=sizes), root)
    return root


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bench, tmp_path_factory) -> Path:
    """A randomly initialised 2-layer XLM-R with a tokenizer trained on the tiny corpus, saved
    as a Hugging Face folder exactly like a phase-1 model."""
    from xstilts import formats
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pretrain import model_config, train_tokenizer
    from xstilts.training import set_seed

    out = tmp_path_factory.mktemp("tiny_encoder")
    lines = [line for lang in ("en", "de", "zh") for line in formats.read_lines(tiny_bench / "mlm_corpus" / lang / "train.txt")]
    tokenizer = train_tokenizer(lines, 400, out)
    set_seed(0)
    arch = {"architecture": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 256, "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.0}
    MultiTaskModel.build(model_config(tokenizer, arch), {"mlm": HeadSpec("text")}).save_head_model("mlm", out, tokenizer)
    return out


#: The test modules that take longest, longest first (seconds in the suite on the 2-core AMD EPYC,
#: 2026-12-07: 433, 335, 185, 181, 81, 32, 26, 25, 16, 11, 9, 8, 8; the first five run the
#: workflow). pytest-xdist (``--dist loadfile`` in pyproject.toml: a module's tests, and so its
#: fixtures, stay in one process) hands modules out in collection order, so these go first and
#: the short modules fill in around them; a long module handed out last would run alone at the end.
SLOW_MODULES = ("test_workflow.py", "test_slurm.py", "test_architectures.py", "test_reliability.py", "test_reasoning.py",
                "test_real_data.py", "test_worker.py", "test_paper_preset.py", "test_bench_training.py",
                "test_pretrain.py", "test_comparison.py", "test_gpu_slots.py", "test_paper.py")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``--numprocesses logical`` (pyproject.toml): one test process per core, plus one. Some
    modules spend minutes waiting rather than computing: the SLURM scenario waits for the
    plugin's status checks (about 36 s per stage of the grid, with jobs of 10 to 15 s), the
    fault drills for processes they kill. The extra process keeps the cores busy meanwhile.
    ``--maxprocesses`` still caps the count; ``-n N`` sets it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_MODULES)))  # stable: file order otherwise
