"""Speed settings that leave the science alone (README "Speed settings"): forward passes of any
size (hparams micro_batch_size) over the same optimizer steps, SDPA attention, the deterministic
switch."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from test_training import preempt_at_step_5
from xstilts import pipeline, training
from xstilts.config import hparam_defaults
from xstilts.modeling import ChoiceScoringModel, HeadSpec, MultiTaskModel, attention_implementation, load_model
from xstilts.tasks import INTERMEDIATE_TASKS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hp(**kw):
    return {**hparam_defaults(), "batch_size": 4, "grad_accum": 4, "max_seq_length": 64, "learning_rate": 1e-3,
            "warmup_ratio": 0.0, "mixed_precision": "no", "epochs": 1, **kw}


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_encoder)


def mnli(params, tiny_bench, tokenizer):
    task = INTERMEDIATE_TASKS["mnli"]
    return pipeline._task_data(task, params, tiny_bench, tokenizer, task.dev)


def model_for(data, tiny_encoder, dropout=True):
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})
    if not dropout:  # dropout masks depend on the shapes drawn, so compare passes without it
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return model


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------
# Forward passes


def test_forward_passes_keep_each_steps_examples():
    lengths = np.random.default_rng(0).integers(5, 60, size=90)
    features = [{"input_ids": [1] * int(n)} for n in lengths]
    data = training.TaskData("a", "pair_classification", "accuracy", hp(batch_size=4, grad_accum=4, length_grouping=4),
                             train=training.Encoded(features))
    stream = training.schedule([data], 7)
    for _ in range(30):
        _, batches = next(stream)
        assert training.forward_passes(batches, 4, 4, lengths) is batches  # the default: the schedule's own
        for size in (1, 3, 16, 40):
            passes = training.forward_passes(batches, size, 4, lengths)
            assert sorted(i for p in passes for i in p) == sorted(i for b in batches for i in b)
            assert len(passes) == math.ceil(sum(map(len, batches)) / size) and all(len(p) <= size for p in passes)
            flat = [i for p in passes for i in p]
            assert list(lengths[flat]) == sorted(lengths[flat], reverse=True)  # longest first: little padding
            weights_ = training.step_weights(passes, regrouped=True)
            assert math.isclose(sum(weights_), 1.0) and weights_[0] == len(passes[0]) / len(flat)
    assert training.step_weights([[1, 2], [3]], regrouped=False) == [None, None]


def test_micro_batch_equal_to_batch_size_is_bit_identical_to_the_default(tiny_bench, tiny_encoder, tokenizer, tmp_path):
    # 60 examples in batches of 7: every epoch ends with a short batch of 4, which jiant's weighting keeps.
    runs = {}
    for setting in (None, 7):
        params = hp(batch_size=7, grad_accum=3, max_steps=5, eval_every_steps=5, micro_batch_size=setting)
        data = mnli(params, tiny_bench, tokenizer)
        model = model_for(data, tiny_encoder)
        result = training.train(model, [data], tokenizer, params, 0, tmp_path / str(setting), "fp")
        assert result["micro_batch_size"] == {"mnli": 7}
        runs[setting] = (weights(model), result["history"])
    (a, history_a), (b, history_b) = runs[None], runs[7]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert history_a == history_b


def test_other_micro_batches_train_the_same_steps_to_nearly_the_same_weights(tiny_bench, tiny_encoder, tokenizer,
                                                                           tmp_path, monkeypatch):
    drawn = {}
    original = training.train_step

    def recording(model, task, passes, *args, **kwargs):
        drawn.setdefault(current, []).append(sorted(i for p in passes for i in p))
        return original(model, task, passes, *args, **kwargs)

    monkeypatch.setattr(training, "train_step", recording)
    runs = {}
    for current in (None, 3, 16):
        params = hp(max_steps=4, eval_every_steps=4, micro_batch_size=current)
        data = mnli(params, tiny_bench, tokenizer)
        model = model_for(data, tiny_encoder, dropout=False)
        result = training.train(model, [data], tokenizer, params, 0, tmp_path / str(current), "fp")
        assert result["micro_batch_size"] == {"mnli": current or 4}
        runs[current] = (weights(model), result["history"][-1]["train_loss"])
    assert drawn[None] == drawn[3] == drawn[16]  # the same 16 examples in each of the 4 steps
    assert all(len(step) == 16 for step in drawn[None])
    reference, loss = runs[None]
    for size in (3, 16):
        other, other_loss = runs[size]
        assert not all(torch.equal(reference[k], other[k]) for k in reference)  # really another summation
        diff = max(float((reference[k].float() - other[k].float()).abs().max()) for k in reference)
        assert diff < 1e-5, (size, diff)  # a pass weighted by count instead of share: 4e-3
        assert math.isclose(loss, other_loss, rel_tol=1e-5)


def test_resume_with_a_micro_batch_other_than_batch_size_is_exact(tiny_bench, tiny_encoder, tokenizer, tmp_path,
                                                                  monkeypatch):
    params = hp(max_steps=6, eval_every_steps=2, micro_batch_size=3, grad_accum=2, length_grouping=4)
    data = mnli(params, tiny_bench, tokenizer)
    full = model_for(data, tiny_encoder)
    training.train(full, [data], tokenizer, params, 0, tmp_path / "a", "fp")

    preempt_at_step_5(monkeypatch, lambda: training.train(model_for(data, tiny_encoder), [data], tokenizer, params, 0,
                                                          tmp_path / "b", "fp"))
    saved = torch.load(tmp_path / "b" / "state.pt", map_location="cpu", weights_only=True)
    assert saved["state"]["step"] == 4 and saved["state"]["micro_batch_size"] == {"mnli": 3}
    resumed = model_for(data, tiny_encoder)
    result = training.train(resumed, [data], tokenizer, params, 0, tmp_path / "b", "fp")
    assert result["steps"] == 6 and result["micro_batch_size"] == {"mnli": 3}
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("batch_size", "grad_accum", "expected"), [(2, 3, 6), (2, 5, training.CPU_AUTO_MICRO_BATCH)])
def test_auto_on_cpu_takes_the_effective_batch_up_to_a_cap_and_records_it(batch_size, grad_accum, expected, tiny_bench,
                                                                           tiny_encoder, tokenizer, tmp_path):
    params = hp(max_steps=2, eval_every_steps=2, micro_batch_size="auto", batch_size=batch_size, grad_accum=grad_accum)
    data = mnli(params, tiny_bench, tokenizer)
    result = training.train(model_for(data, tiny_encoder), [data], tokenizer, params, 0, tmp_path / "ck", "fp")
    assert result["micro_batch_size"] == {"mnli": expected}
    assert result["attention"] == ["sdpa"]


def test_auto_takes_the_largest_even_split_that_fits():
    tried = []

    def fits_up_to(limit):
        def fits(size):
            tried.append(size)
            return size <= limit
        return fits

    assert training.largest_fitting(32, fits_up_to(12)) == 11  # 32, 16, 11: three passes of up to 11
    assert tried == [32, 16, 11]
    assert training.largest_fitting(32, fits_up_to(100)) == 32
    assert training.largest_fitting(8, fits_up_to(1)) == 1
    with pytest.raises(training.TrainingError, match="not even one example fits"):
        training.largest_fitting(8, fits_up_to(0))
    data = training.TaskData("a", "pair_classification", "accuracy", hp(batch_size=4, grad_accum=8, micro_batch_size="auto"),
                             train=training.Encoded([]))
    assert training.micro_batch_size(data, None) == training.CPU_AUTO_MICRO_BATCH == 8  # no probe: a CPU
    assert training.micro_batch_size(data, fits_up_to(9)) == 8
    data.hp["micro_batch_size"] = None
    assert training.micro_batch_size(data, fits_up_to(9)) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the memory probe runs on CUDA only")
def test_the_memory_probe_leaves_weights_and_random_state_alone(tiny_bench, tiny_encoder, tokenizer):
    data = mnli(hp(), tiny_bench, tokenizer)
    model = model_for(data, tiny_encoder).cuda()
    before = weights(model)
    optimizer = training.optimizer_for(model, data.hp, torch.device("cuda"))
    fits = training.memory_probe(model, data, training.collator(data.format, tokenizer, data.hp), torch.device("cuda"),
                                 lambda: torch.autocast("cuda", dtype=torch.bfloat16), optimizer)
    rng = torch.cuda.get_rng_state()
    assert fits(16) is True
    assert torch.equal(rng, torch.cuda.get_rng_state())
    assert all(p.grad is None for p in model.parameters())
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert optimizer.defaults["fused"] is True


def test_adamw_is_fused_on_cuda_only():
    model = torch.nn.Linear(2, 2)
    params = hp()
    assert not training.optimizer_for(model, params, torch.device("cpu")).defaults["fused"]
    if torch.cuda.is_available():
        assert training.optimizer_for(model.cuda(), params, torch.device("cuda")).defaults["fused"] is True


# ------------------------------------------------------------------------------------------
# Deterministic kernels: a run-level switch, passed by every job to configure_determinism


def test_the_deterministic_switch_reaches_torch(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda flag, **kw: calls.append((flag, kw)))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    training.configure_determinism(1, True)
    assert calls == [(True, {"warn_only": True})] and torch.backends.cudnn.benchmark is False
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    calls.clear()
    training.configure_determinism(1, False)
    assert calls == [(False, {})] and torch.backends.cudnn.benchmark is True


class Stop(Exception):
    pass


@pytest.mark.parametrize("job_function", ["pretrain_mlm", "finetune_intermediate", "finetune_target", "predict_target"])
def test_every_job_passes_its_deterministic_setting(job_function, monkeypatch, tmp_path):
    seen = []

    def record(threads, deterministic):
        seen.append((threads, deterministic))
        raise Stop

    monkeypatch.setattr(training, "configure_determinism", record)
    job = {"hparams": hp(deterministic=False)}
    args = {"pretrain_mlm": (job, tmp_path, [], tmp_path, tmp_path, tmp_path, 3),
            "finetune_intermediate": (job, tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, 3),
            "finetune_target": (job, 0, tmp_path, tmp_path, tmp_path, tmp_path, tmp_path, 3),
            "predict_target": (job, tmp_path, tmp_path, tmp_path, tmp_path, 3)}[job_function]
    with pytest.raises(Stop):
        getattr(pipeline, job_function)(*args)
    assert seen == [(3, False)]


def test_deterministic_defaults_to_true_in_the_schema():
    assert hparam_defaults()["deterministic"] is True
    assert hparam_defaults()["micro_batch_size"] is None


# ------------------------------------------------------------------------------------------
# SDPA attention where the architecture has it, the same outputs as eager


def _config(model_type, **kw):
    from transformers import AutoConfig

    sizes = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "pad_token_id": 1, **kw}
    return AutoConfig.for_model(model_type, **sizes)


def _padded_batch():
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 2], [0, 11, 12, 2, 1, 1, 1, 1]])
    return {"input_ids": ids, "attention_mask": (ids != 1).long()}


def test_sdpa_is_used_where_supported_and_matches_eager(tiny_encoder):
    from transformers import AutoModel, AutoModelForSequenceClassification

    batch = _padded_batch()
    mask = batch["attention_mask"].bool()
    sdpa = load_model(AutoModel, tiny_encoder).eval()
    eager = load_model(AutoModel, tiny_encoder, attn_implementation="eager").eval()
    assert (sdpa.config._attn_implementation, eager.config._attn_implementation) == ("sdpa", "eager")
    with torch.no_grad():
        a, b = sdpa(**batch).last_hidden_state, eager(**batch).last_hidden_state
    torch.testing.assert_close(a[mask], b[mask], rtol=0, atol=1e-5)

    # A decoder from a config (random weights), through a stock head: the same weights both ways.
    config = _config("qwen2", num_key_value_heads=1)
    torch.manual_seed(0)
    decoder = load_model(AutoModelForSequenceClassification, config).eval()
    # (from_config sets the implementation on the config it is given: a copy for the other.)
    other = load_model(AutoModelForSequenceClassification, copy.deepcopy(config), attn_implementation="eager").eval()
    other.load_state_dict(decoder.state_dict())
    assert decoder.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(decoder(**batch).logits, other(**batch).logits, rtol=0, atol=1e-5)
    assert attention_implementation(ChoiceScoringModel, config) == "sdpa"

    # The shared encoder of a training model, its heads and the metrics' record say sdpa.
    model = MultiTaskModel.build(tiny_encoder, {"x": HeadSpec("pair_classification", ("a", "b"))})
    assert training.attention_implementations(model) == ["sdpa"]


@pytest.mark.parametrize("model_type", ["deberta-v2", "bloom"])
def test_architectures_without_sdpa_load_with_eager(model_type):
    from transformers import AutoModel

    config = _config(model_type, **({"n_layer": 2, "n_head": 2} if model_type == "bloom" else {}))
    assert attention_implementation(AutoModel, config) == "eager"
    model = load_model(AutoModel, config)
    assert model.config._attn_implementation == "eager"
