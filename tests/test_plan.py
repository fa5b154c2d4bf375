"""The grid a config implies: rows, trainings, languages, data layout, per-job settings."""

from __future__ import annotations

import copy

from xstilts.config import resolve
from xstilts.plan import Plan
from xstilts.tasks import DATASETS


def test_demo_grid_shape(demo_exp):
    plan = Plan(demo_exp)
    assert plan.encoders == ["baseline", "anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "ccg",
                             "cosmosqa", "commonsenseqa", "multitask"]
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


def test_layout_and_sizes(demo_exp):
    plan = Plan(demo_exp)
    assert plan.layout("mnli") == {"train": ["en"], "dev": ["en"]}
    assert plan.layout("tydiqa")["train"] == ["en"]
    assert plan.synthetic_sizes("mnli") == demo_exp["data"]["synthetic"]["sizes"]["mnli"] | {}
    assert set(plan.datasets()) == set(DATASETS)


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
    plan = Plan(demo_exp)
    job = plan.target_job("squad")
    assert set(job) == {"training", "hparams", "dev_sources"}
    predict = plan.predict_job("squad")
    assert set(predict) == {"training", "hparams", "prediction", "predict"}
    assert predict["predict"] == {"xquad": plan.target_languages("xquad"), "mlqa": plan.target_languages("mlqa")}
    assert predict["prediction"] == {"n_best_size": 20, "max_answer_length": 30}
    assert predict["hparams"] == job["hparams"]
    multitask = plan.intermediate_job("multitask")
    assert multitask["tasks"] == plan.intermediate_tasks
    assert set(multitask["task_hparams"]) == set(plan.intermediate_tasks)


def test_prediction_languages_and_decoding_are_not_training_params(raw_config):
    config = copy.deepcopy(raw_config)
    base = Plan(resolve(config))
    config["targets"] = {"languages": {"xquad": ["en", "de"]}, "prediction": {"n_best_size": 5}}
    changed = Plan(resolve(config))
    for training in base.trainings:
        assert changed.target_job(training) == base.target_job(training), training
    assert changed.predict_job("squad")["predict"]["xquad"] == ["en", "de"]
    assert changed.predict_job("squad")["prediction"] == {"n_best_size": 5, "max_answer_length": 30}
    assert changed.predict_job("xnli") == base.predict_job("xnli")


def test_all_languages_dev_selection_is_a_training_param(raw_config):
    config = copy.deepcopy(raw_config)
    config["targets"] = {"selection": "all_languages_dev"}
    job = Plan(resolve(config)).target_job("xnli")
    assert {d for d, _, _ in job["dev_sources"]} == {"xnli"}


def test_keep_models_defaults_to_true_and_the_paper_preset_drops_them(raw_config):
    assert Plan(resolve(copy.deepcopy(raw_config))).keep_models is True
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    assert Plan(resolve(config)).keep_models is False
    del config["presets"]["paper"]["targets"]["keep_models"]
    assert Plan(resolve(config)).keep_models is True
