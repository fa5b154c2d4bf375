"""The grid a config implies: rows, trainings, languages, data layout, per-job settings."""

from __future__ import annotations

import copy

from xstilts.config import resolve
from xstilts.plan import Plan
from xstilts.tasks import DATASETS


def test_demo_grid_shape(demo_exp):
    plan = Plan(demo_exp)
    assert plan.matrix_encoders == ["baseline", "anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "ccg",
                                    "cosmosqa", "commonsenseqa", "multitask"]
    # The variant rows come after the matrix's and get every target like them.
    assert plan.encoders == [*plan.matrix_encoders, "mnli+mlm", "mnli-translated"]
    assert plan.itasks == [*plan.matrix_encoders[1:], "mnli+mlm", "mnli-translated"]
    # SQuAD v1.1 training serves XQuAD and MLQA: 7 trainings for 8 trained targets (XCOPA included)
    assert plan.trainings == ["xnli", "pawsx", "udpos", "panx", "squad", "tydiqa", "xcopa"]
    assert plan.served("squad") == ["xquad", "mlqa"]
    assert plan.retrieval_targets == ["bucc2018", "tatoeba"]


def test_languages_are_official_lists_filtered(demo_exp):
    plan = Plan(demo_exp)
    assert plan.target_languages("xnli") == ["ar", "de", "en", "es", "fr", "ru", "zh"]  # official order
    assert plan.target_languages("mlqa") == ["en", "es", "de", "ar", "zh"]
    assert plan.target_languages("bucc2018") == ["de", "fr", "ru", "zh"]
    for target in plan.targets:
        others = [lang for lang in plan.target_languages(target) if lang != "en"]
        assert len(others) >= 4, target


def test_all_languages(raw_config):
    config = copy.deepcopy(raw_config)
    config["languages"] = "all"
    plan = Plan(resolve(config))
    assert len(plan.target_languages("panx")) == 40
    assert len(plan.target_languages("udpos")) == 33
    assert len(plan.languages("udpos", "dev")) == 29  # kk, th, tl, yo are test-only


def test_layout_and_sizes(raw_config, demo_exp):
    plan = Plan(demo_exp)
    assert plan.layout("mnli") == {"train": ["en"], "dev": ["en"]}
    assert plan.layout("tydiqa")["train"] == ["en"]
    # config.yaml's demo sizes: mnli's own, xnli's from `default` (no train split: English-only training).
    assert plan.synthetic_sizes("mnli") == {"train": 1500, "dev": 150}
    assert plan.synthetic_sizes("xnli") == {"dev": 120, "test": 100}
    assert plan.synthetic_sizes("tatoeba") == {"test": 150}
    config = copy.deepcopy(raw_config)
    config["data"] = {"synthetic": {"sizes": {"default": {"train": 7, "dev": 5, "test": 3}, "qqp": {"train": 11}}}}
    sizes = Plan(resolve(config)).synthetic_sizes  # merged over the demo's sizes
    assert sizes("qqp") == {"train": 11, "dev": 5} and sizes("udpos") == {"train": 7, "dev": 5, "test": 3}
    assert sizes("mnli") == {"train": 1500, "dev": 150}
    # Every dataset of the demo grid: the paper's, XCOPA's recipe and the MLM corpus, in registry order.
    assert plan.datasets() == ["anli_r1", "anli_r2", "anli_r3", "snli", "mnli", "qqp", "squad_v1", "squad_v2",
                               "hellaswag", "cosmosqa", "commonsenseqa", "ccg", "siqa", "copa", "xnli", "pawsx",
                               "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba", "xcopa",
                               "mnli_mt", "mlm_corpus"]
    # The demo reads every registered dataset but SQuAD's translation (its translated variant
    # is MNLI's alone; tests/test_synthetic.py generates squad_v1_mt).
    assert [d for d in DATASETS if d != "squad_v1_mt"] == plan.datasets()


def test_selection_sources(raw_config):
    config = copy.deepcopy(raw_config)
    plan = Plan(resolve(config))
    assert [(s.dataset, s.split, s.lang) for s in plan.selection_sources("xnli")] == [("mnli", "dev", "en")]
    config["targets"] = {"selection": "all_languages_dev"}
    plan = Plan(resolve(config))
    xnli = plan.selection_sources("xnli")
    assert {s.dataset for s in xnli} == {"xnli"} and len(xnli) == 7
    # XQuAD has no dev split; MLQA's dev sets select the SQuAD-trained model
    assert {s.dataset for s in plan.selection_sources("squad")} == {"mlqa"}


def test_job_settings_only_hold_what_the_job_uses(demo_exp):
    plan = Plan(demo_exp).for_model("xlmr-demo")
    job = plan.target_job("squad")
    assert set(job) == {"training", "hparams", "dev_sources", "adaptation"}
    assert job["adaptation"] == {"lora": None, "gradient_checkpointing": False}
    predict = plan.predict_job("squad")
    assert set(predict) == {"training", "hparams", "prediction", "predict"}
    # XTREME's lists, filtered by the demo's languages.
    assert predict["predict"] == {"xquad": ["en", "es", "de", "ru", "ar", "zh"], "mlqa": ["en", "es", "de", "ar", "zh"]}
    assert predict["prediction"] == {"n_best_size": 20, "max_answer_length": 30}
    assert predict["hparams"] == job["hparams"]


def test_multitask_job(raw_config):
    config = copy.deepcopy(raw_config)
    config["intermediate"] = {"task_hparams": {"squad_v1": {"max_seq_length": 192, "batch_size": 8}}}
    multitask = Plan(resolve(config)).for_model("xlmr-demo").intermediate_job("multitask")
    nine = ["anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "ccg", "cosmosqa", "commonsenseqa"]
    assert multitask["tasks"] == nine and list(multitask["task_hparams"]) == nine
    # The run's settings are the demo's intermediate hparams; each member keeps its own overrides.
    assert {k: multitask["hparams"][k] for k in ("learning_rate", "epochs", "batch_size", "max_seq_length")} == \
        {"learning_rate": 2.0e-3, "epochs": 2, "batch_size": 32, "max_seq_length": 128}
    squad, mnli = multitask["task_hparams"]["squad_v1"], multitask["task_hparams"]["mnli"]
    assert (squad["max_seq_length"], squad["batch_size"], squad["learning_rate"]) == (192, 8, 2.0e-3)
    assert (mnli["max_seq_length"], mnli["batch_size"]) == (128, 32)
    assert multitask["examples_cap"] is None and multitask["seed"] == 0


def test_prediction_languages_and_decoding_are_not_training_params(raw_config):
    config = copy.deepcopy(raw_config)
    base = Plan(resolve(config)).for_model("xlmr-demo")
    config["targets"] = {"languages": {"xquad": ["en", "de"]}, "prediction": {"n_best_size": 5}}
    changed = Plan(resolve(config)).for_model("xlmr-demo")
    for training in base.trainings:
        assert changed.target_job(training) == base.target_job(training), training
    assert changed.predict_job("squad")["predict"]["xquad"] == ["en", "de"]
    assert changed.predict_job("squad")["prediction"] == {"n_best_size": 5, "max_answer_length": 30}
    assert changed.predict_job("xnli") == base.predict_job("xnli")


def test_all_languages_dev_selection_is_a_training_param(raw_config):
    config = copy.deepcopy(raw_config)
    config["targets"] = {"selection": "all_languages_dev"}
    job = Plan(resolve(config)).for_model("xlmr-demo").target_job("xnli")
    assert {d for d, _, _ in job["dev_sources"]} == {"xnli"}


def test_keep_models_defaults_to_true_and_the_paper_preset_drops_them(raw_config):
    assert Plan(resolve(copy.deepcopy(raw_config))).keep_models is True
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    assert Plan(resolve(config)).keep_models is False
    del config["presets"]["paper"]["targets"]["keep_models"]
    assert Plan(resolve(config)).keep_models is True


def test_variant_rows_sources_and_jobs(demo_exp):
    plan = Plan(demo_exp).for_model("xlmr-demo")
    assert plan.variants == ["mlm", "translated"]
    assert plan.variant_rows("mlm") == [("mnli+mlm", "mnli")]
    assert plan.variant_rows("translated") == [("mnli-translated", "mnli")]
    # Translated: the English original plus MNLI's translations into the demo's XNLI languages,
    # selected on MNLI's English dev as the plain row.
    train, dev = plan.intermediate_sources("mnli-translated")
    assert [(s.dataset, s.lang) for s in train] == [("mnli", "en")] + [
        ("mnli_mt", lang) for lang in ["ar", "de", "es", "fr", "ru", "zh"]]
    assert [(s.dataset, s.split, s.lang) for s in dev] == [("mnli", "dev", "en")]
    job = plan.intermediate_job("mnli-translated")
    assert job["tasks"] == ["mnli"] and job["variant"]["name"] == "translated"
    assert job["hparams"]["learning_rate"] == 1.0e-3  # the variant's own override (config.yaml)
    assert plan.intermediate_job("mnli")["hparams"]["learning_rate"] == 2.0e-3
    assert "variant" not in plan.intermediate_job("mnli")  # plain jobs' params are unchanged
    # +MLM: MNLI's own sources, the corpus in every corpus language, the task selecting.
    train, _ = plan.intermediate_sources("mnli+mlm")
    assert {s.dataset for s in train} == {"mnli", "mlm_corpus"}
    mlm = plan.intermediate_job("mnli+mlm")["variant"]
    assert mlm["share"] == 0.5 and mlm["selection"] == "task"
    assert mlm["languages"] == plan.corpus_languages()
    assert "mnli_mt" in plan.datasets() and "mlm_corpus" in plan.datasets()
    # A translation is generated with exactly the examples of the dataset it translates.
    assert plan.synthetic_sizes("mnli_mt") == {"train": plan.synthetic_sizes("mnli")["train"]}


def test_variant_options(raw_config):
    config = copy.deepcopy(raw_config)
    config["intermediate"] = {"variants": {"translated": {"tasks": ["mnli"], "languages": ["de", "zh"],
                                                          "include_english": False},
                                           "mlm": {"tasks": [], "languages": ["en", "de"]}}}
    plan = Plan(resolve(config))
    assert plan.variants == ["translated"]
    assert "mnli+mlm" not in plan.encoders
    train, _ = plan.intermediate_sources("mnli-translated")
    assert [(s.dataset, s.lang) for s in train] == [("mnli_mt", "de"), ("mnli_mt", "zh")]
    assert plan.mlm_languages() == ["de", "en"]


def test_variant_config_errors(raw_config):
    import pytest

    from xstilts.config import ConfigError

    config = copy.deepcopy(raw_config)
    config["intermediate"] = {"tasks": ["qqp", "squad_v1"], "variants": {"mlm": {"tasks": ["mnli"]}}}
    with pytest.raises(ConfigError, match=r"variants.mlm.tasks: mnli is not in intermediate.tasks"):
        resolve(config)
    config["intermediate"] = {"variants": {"translated": {"tasks": ["qqp"]}}}
    with pytest.raises(ConfigError, match=r"qqp"):
        resolve(config)  # no public translation of QQP: the schema's enum refuses it
    config["intermediate"] = {"variants": {"translated": {"tasks": ["mnli"], "languages": ["ko"]}}}
    with pytest.raises(ConfigError, match=r"ko has no translation of mnli"):
        resolve(config)
