"""The training loop: deterministic schedules, learning, exact resumption, multi-task heads."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from xstilts import formats, pipeline, task_formats, training
from xstilts.config import hparam_defaults
from xstilts.modeling import HeadSpec, MultiTaskModel
from xstilts.tasks import INTERMEDIATE_TASKS, TARGET_TRAININGS


NO_ADAPTATION = {"lora": None, "gradient_checkpointing": False}


def hp(**kw):
    return {**hparam_defaults(), "batch_size": 8, "grad_accum": 1, "max_seq_length": 64, "learning_rate": 5e-3,
            "warmup_ratio": 0.0, "mixed_precision": "no", **kw}


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_encoder)


def task_data(name, params, tiny_bench, tokenizer, intermediate=True):
    task = (INTERMEDIATE_TASKS if intermediate else TARGET_TRAININGS)[name]
    return pipeline._task_data(task, params, tiny_bench, tokenizer, task.dev)


def preempt_at_step_5(monkeypatch, run) -> None:
    """``run()`` (a training with a checkpoint at step 4) preempted at its 5th optimizer step."""
    calls = {"n": 0}
    original = torch.optim.AdamW.step

    def preempt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at step 4
            raise KeyboardInterrupt("preempted")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", preempt)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(torch.optim.AdamW, "step", original)


def test_steps_follow_jiant(tiny_bench, tokenizer):
    assert training.steps_for(100, {"batch_size": 4, "grad_accum": 8, "epochs": 2}) == 8  # 2 x ceil(100/32)
    assert training.steps_for(100, {"batch_size": 4, "grad_accum": 8, "epochs": 0.5}) == 2


def test_schedule_is_deterministic_and_proportional(tiny_bench, tokenizer):
    big = training.TaskData("a", "pair_classification", "accuracy", hp(batch_size=2),
                            train=training.Encoded([{}] * 300))
    small = training.TaskData("b", "pair_classification", "accuracy", hp(batch_size=2),
                              train=training.Encoded([{}] * 100))

    def draw(seed, cap=None, n=4000):
        stream = training.schedule([big, small], seed, cap)
        return [next(stream) for _ in range(n)]

    first = draw(0)
    assert first == draw(0)
    counts = Counter(i for i, _ in first)
    assert abs(counts[0] / len(first) - 0.75) < 0.03  # proportional to 300 : 100
    capped = Counter(i for i, _ in draw(0, cap=100))
    assert abs(capped[0] / 4000 - 0.5) < 0.03
    # each task's stream covers its examples once per epoch
    batches = [b for i, mb in first if i == 1 for b in mb][:50]
    assert sorted(x for b in batches for x in b) == list(range(100))


def _plain_batches(n, batch_size, rng):
    """The batch order before length grouping existed (grouping 0 must reproduce it exactly)."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size].tolist()


def test_length_grouping_keeps_epochs_and_cuts_padding():
    lengths = np.random.default_rng(5).integers(5, 120, size=203)
    features = [{"input_ids": [1] * int(n)} for n in lengths]
    data = training.TaskData("a", "pair_classification", "accuracy", hp(batch_size=8, length_grouping=0),
                             train=training.Encoded(features))
    plain_stream = training.schedule([data], 3)
    expected = _plain_batches(203, 8, np.random.default_rng([3, 2, 0]))
    assert [next(plain_stream)[1][0] for _ in range(80)] == [next(expected) for _ in range(80)]

    def epochs(grouping, n_epochs=2):
        grouped = dataclasses.replace(data, hp=hp(batch_size=8, length_grouping=grouping))
        stream = training.schedule([grouped], 3)
        per_epoch = -(-203 // 8)
        return [[next(stream)[1][0] for _ in range(per_epoch)] for _ in range(n_epochs)]

    grouped = epochs(4)
    assert grouped == epochs(4)  # seeded: a resumed run replays it
    for epoch in grouped:  # every example once per epoch
        assert sorted(i for b in epoch for i in b) == list(range(203))

    def padded(batches):
        return sum(len(b) * max(lengths[b]) for b in batches)

    real = int(lengths.sum())
    plain_waste = padded(epochs(0)[0]) - real
    grouped_waste = padded(grouped[0]) - real
    assert grouped_waste < 0.5 * plain_waste, (grouped_waste, plain_waste)
    # multiple choice: an example's length is its longest choice
    choices = [{"input_ids": [[1] * 3, [1] * 9, [1] * 4]}, {"input_ids": [[1] * 2, [1] * 2]}]
    assert training.feature_lengths(choices).tolist() == [9, 2]


def test_training_learns_a_tagging_task(tiny_bench, tiny_encoder, tokenizer, tmp_path):
    data = task_data("udpos", hp(epochs=8), tiny_bench, tokenizer, intermediate=False)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"udpos": HeadSpec("tagging", data.labels)})
    before = training.evaluate(model, data, tokenizer, torch.device("cpu"), contextlib.nullcontext)
    result = training.train(model, [data], tokenizer, data.hp, 0, tmp_path / "ck", "fp")
    assert result["dev"]["udpos"]["score"] > before["score"] + 30
    assert result["best_step"] in [h["step"] for h in result["history"]]
    assert (tmp_path / "ck" / "best.pt").exists()  # the job script deletes checkpoints after saving outputs


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("grouping", [0, 4])
def test_resume_after_preemption_matches_an_uninterrupted_run(grouping, tiny_bench, tiny_encoder, tokenizer, tmp_path,
                                                              monkeypatch):
    params = hp(max_steps=6, eval_every_steps=2, epochs=1, length_grouping=grouping)
    data = task_data("mnli", params, tiny_bench, tokenizer)

    def fresh():
        training.set_seed(0)
        return MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})

    full = fresh()
    training.train(full, [data], tokenizer, params, 0, tmp_path / "a", "fp")

    preempt_at_step_5(monkeypatch, lambda: training.train(fresh(), [data], tokenizer, params, 0, tmp_path / "b", "fp"))
    resumed = fresh()
    result = training.train(resumed, [data], tokenizer, params, 0, tmp_path / "b", "fp")
    assert result["steps"] == 6
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stale_checkpoint_is_not_resumed(tiny_bench, tiny_encoder, tokenizer, tmp_path):
    params = hp(max_steps=2, eval_every_steps=1)
    data = task_data("mnli", params, tiny_bench, tokenizer)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})
    training.train(model, [data], tokenizer, params, 0, tmp_path / "c", "old-settings")
    longer = hp(max_steps=3, eval_every_steps=1)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})
    result = training.train(model, [data], tokenizer, longer, 0, tmp_path / "c", "new-settings")
    assert [h["step"] for h in result["history"]] == [1, 2, 3]  # started from scratch


def test_multitask_shares_one_encoder_and_trains_every_head(tiny_bench, tiny_encoder, tokenizer, tmp_path):
    names = ["mnli", "squad_v2", "ccg", "hellaswag"]
    tasks = [task_data(n, hp(max_seq_length=96, epochs=1), tiny_bench, tokenizer) for n in names]
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {t.name: HeadSpec(t.format, t.labels) for t in tasks})
    assert all(head.base_model is model.encoder for head in model.heads.values())
    heads_before = {n: copy.deepcopy(model.heads[n].state_dict()) for n in names}
    result = training.train(model, tasks, tokenizer, hp(max_seq_length=96), 0, tmp_path / "m", "fp")
    assert set(result["dev"]) == set(names)
    for n in names:
        after = model.heads[n].state_dict()
        changed = [k for k in after if not k.startswith(model.heads[n].base_model_prefix) and not torch.equal(after[k], heads_before[n][k])]
        assert changed, f"head of {n} was never updated"
    assert tasks[1].allow_null  # SQuAD v2.0 may answer ""


def test_predictions_are_decoded_per_format(tiny_bench, tiny_encoder, tokenizer):
    data = task_data("udpos", hp(), tiny_bench, tokenizer, intermediate=False)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"udpos": HeadSpec("tagging", data.labels)})
    records = formats.read_dataset(tiny_bench, "udpos", "de", "test")
    preds = training.predict(model, data, records, task_formats.encode("tagging", tokenizer, records, data.hp, data.labels), tokenizer)
    assert [len(p) for p in preds] == [len(r["tokens"]) for r in records]
    assert set(np.concatenate(preds)) <= set(data.labels)


@pytest.fixture()
def fresh_accelerate_state():
    # accelerate keeps one precision per process (a job is one process); the other tests of this
    # process ran with "no", so the state is cleared around this one, as accelerate's own tests do.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_bf16_training_runs_on_cpu(tiny_bench, tiny_encoder, tokenizer, tmp_path, fresh_accelerate_state):
    # CPU autocast supports bf16, so the bf16 path (the paper preset's on GPUs) runs here too.
    params = hp(mixed_precision="bf16", max_steps=12, eval_every_steps=4, eval_max_examples=16, epochs=1)
    data = task_data("udpos", params, tiny_bench, tokenizer, intermediate=False)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"udpos": HeadSpec("tagging", data.labels)})
    before = _weights(model)
    dtypes = set()
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    result = training.train(model, [data], tokenizer, params, 0, tmp_path / "ck", "fp")
    hook.remove()
    assert result["mixed_precision"] == "bf16" and result["steps"] == 12
    assert torch.bfloat16 in dtypes  # the forward passes really ran under bf16 autocast
    losses = [h["train_loss"] for h in result["history"]]
    assert len(losses) == 3 and np.isfinite(losses).all() and losses[-1] < losses[0]
    after = _weights(model)
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # float32 weights, bf16 compute
    assert any(not torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------------------------------
# Nothing untrusted is executed (issue 13): checkpoints load as weights only, models from
# safetensors only, no remote code.


def test_a_resume_checkpoint_loads_as_weights_only(tiny_bench, tiny_encoder, tokenizer, tmp_path):
    params = hp(max_steps=2, eval_every_steps=1)
    data = task_data("mnli", params, tiny_bench, tokenizer)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})
    training.train(model, [data], tokenizer, params, 0, tmp_path / "c", "fp")
    saved = torch.load(tmp_path / "c" / "state.pt", map_location="cpu", weights_only=True)
    assert saved["fingerprint"] == "fp" and saved["state"]["step"] == 2
    # The numpy RNG state round-trips through its plain-list form.
    training._set_rng_state(saved["rng"])
    assert training._rng_state()["numpy"] == saved["rng"]["numpy"]


def test_a_model_folder_with_only_pickled_weights_is_refused(tiny_encoder, tmp_path):
    import shutil

    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_encoder, pickled)
    weights = pickled / "model.safetensors"
    torch.save(load_file(weights), pickled / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(OSError, match="safetensors"):
        MultiTaskModel.build(pickled, {"x": HeadSpec("pair_classification", ("a", "b"))})


def test_no_code_enables_remote_code():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "scripts"
    offending = [str(p) for p in root.rglob("*.py") if "trust_remote_code=True" in p.read_text().replace(" ", "")]
    assert offending == []


# ------------------------------------------------------------------------------------------
# A job resumed at its last step (killed after the final checkpoint, before its outputs were
# saved) writes the same bytes as an uninterrupted run: weights, config.json, tokenizer, metrics.


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("phase", ["target", "intermediate"])
def test_resume_at_the_last_step_writes_byte_identical_outputs(phase, tiny_bench, tiny_encoder, tmp_path, monkeypatch):
    params = hp(max_steps=3, eval_every_steps=1, epochs=1)
    if phase == "target":
        job = {"training": "xnli", "hparams": params, "dev_sources": [["mnli", "dev", "en"]],
               "adaptation": NO_ADAPTATION}
        save = "save_head_model"

        def run(out):
            pipeline.finetune_target(job, 0, tiny_encoder, tiny_bench, out / "model", out / "metrics.json", out / "ck", 1)
    else:
        job = {"tasks": ["mnli"], "task_hparams": {"mnli": params}, "hparams": params, "seed": 0, "examples_cap": None,
               "adaptation": NO_ADAPTATION}
        save = "save_encoder"

        def run(out):
            pipeline.finetune_intermediate(job, tiny_encoder, tiny_bench, out / "model", out / "metrics.json", out / "ck", 1)

    run(tmp_path / "full")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the final checkpoint")

    monkeypatch.setattr(MultiTaskModel, save, killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    state = torch.load(tmp_path / "resumed" / "ck" / "state.pt", map_location="cpu", weights_only=True)
    assert state["state"]["step"] == 3  # the rerun has no step left to train
    monkeypatch.undo()
    run(tmp_path / "resumed")

    full, resumed = _files(tmp_path / "full"), _files(tmp_path / "resumed")
    assert "model/config.json" in full and "model/model.safetensors" in full and "metrics.json" in full
    assert sorted(full) == sorted(resumed)
    assert [name for name in full if full[name] != resumed[name]] == []


# ------------------------------------------------------------------------------------------
# A non-finite loss stops training with an error naming the job, instead of training on NaN
# and selecting a dev score of 0.


def test_a_damaged_model_stops_at_its_first_nan_loss(tiny_bench, tiny_encoder, tokenizer, tmp_path):
    params = hp(max_steps=4, eval_every_steps=1)
    data = task_data("mnli", params, tiny_bench, tokenizer)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})
    with torch.no_grad():
        model.encoder.embeddings.word_embeddings.weight.fill_(float("nan"))
    with pytest.raises(training.TrainingError) as error:
        training.train(model, [data], tokenizer, params, 0, tmp_path / "ck", "fp", name="finetune_target out/model")
    message = str(error.value)
    assert message.startswith("finetune_target out/model: the training loss is nan at step 1/4 (task mnli)")
    assert "xstilts verify" in message and "learning rate" in message and "fp16" in message
    assert not (tmp_path / "ck" / "state.pt").exists() and not (tmp_path / "ck" / "best.pt").exists()


def test_a_loss_turning_infinite_keeps_the_last_finite_checkpoint(tiny_bench, tiny_encoder, tokenizer, tmp_path, monkeypatch):
    params = hp(max_steps=6, eval_every_steps=1)
    data = task_data("mnli", params, tiny_bench, tokenizer)
    training.set_seed(0)
    model = MultiTaskModel.build(tiny_encoder, {"mnli": HeadSpec("pair_classification", data.labels)})
    original = MultiTaskModel.forward
    calls = {"train": 0}

    def overflowing(self, task, **batch):
        out = original(self, task, **batch)
        if self.training:
            calls["train"] += 1
            if calls["train"] == 3:
                out.loss = out.loss * float("inf")
        return out

    monkeypatch.setattr(MultiTaskModel, "forward", overflowing)
    with pytest.raises(training.TrainingError, match=r"training in .*ck: the training loss is inf at step 3/6"):
        training.train(model, [data], tokenizer, params, 0, tmp_path / "ck", "fp")
    saved = torch.load(tmp_path / "ck" / "state.pt", map_location="cpu", weights_only=True)
    assert saved["state"]["step"] == 2
    # The weights in memory are still those of step 2: the failing step never reached the optimizer.
    now = model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in saved["model"].items())
