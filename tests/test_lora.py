"""LoRA adapters and gradient checkpointing (xstilts.adaptation) on the demo's two tiny model families.

The tiny XLM-R (conftest's ``tiny_encoder``) and a tiny Qwen2 decoder built the same way (random,
2 blocks, 32 wide, its own tokenizer on the tiny corpus): LoRA trains only adapters and heads,
the loss falls, merging keeps the outputs, the saved folders are plain Hugging Face folders, a
preempted LoRA job resumes exactly, and gradient checkpointing leaves losses and gradients as
they were.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from xstilts import adaptation, formats, pipeline, training
from xstilts.config import ConfigError, hparam_defaults
from xstilts.modeling import HeadSpec, MultiTaskModel
from xstilts.tasks import CHOICE, INTERMEDIATE_TASKS, PAIR, TARGET_TRAININGS

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ["xlm-roberta", "qwen2"]
#: The attention projections peft adapts by default, per family (peft's own table, restated here).
DEFAULT_TARGETS = {"xlm-roberta": ("query", "value"), "qwen2": ("q_proj", "v_proj")}
LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": None}
WITH_LORA = {"lora": LORA, "gradient_checkpointing": False}
PLAIN = {"lora": None, "gradient_checkpointing": False}
TOL = {"rtol": 0, "atol": 1e-5}


def hp(**kw):
    return {**hparam_defaults(), "batch_size": 8, "grad_accum": 1, "max_seq_length": 64, "learning_rate": 5e-3,
            "warmup_ratio": 0.0, "mixed_precision": "no", **kw}


@pytest.fixture(scope="module")
def phase1(tiny_bench, tiny_encoder, tmp_path_factory):
    """family -> a phase-1 model folder (a random LM with its tokenizer, as the demo writes it)."""
    from xstilts.pretrain import model_config, train_tokenizer

    out = tmp_path_factory.mktemp("qwen2_phase1")
    lines = [line for lang in ("en", "de", "zh") for line in formats.read_lines(tiny_bench / "mlm_corpus" / lang / "train.txt")]
    tok = train_tokenizer(lines, 400, out, "qwen2")
    arch = {"architecture": "qwen2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 128, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0}
    training.set_seed(0)
    MultiTaskModel.build(model_config(tok, arch), {"mlm": HeadSpec("text")}).save_head_model("mlm", out, tok)
    return {"xlm-roberta": tiny_encoder, "qwen2": out}


def tokenizer(folder):
    return pipeline._load_tokenizer(folder)


def task_data(name, params, tiny_bench, tok):
    task = INTERMEDIATE_TASKS.get(name) or TARGET_TRAININGS[name]
    return pipeline._task_data(task, params, tiny_bench, tok, task.dev)


def build(folder, data):
    training.set_seed(0)
    return MultiTaskModel.build(folder, {data.name: HeadSpec(data.format, data.labels)})


def mean_loss(model, data, tok, n=32):
    """Mean training loss on the first ``n`` training features, dropout off."""
    model.eval()
    batch = training.collator(data.format, tok, data.hp)(data.train.features[:n])
    with torch.no_grad():
        return float(model(data.name, **batch).loss)


def outputs(model, data, tok):
    """Dev logits of every feature (length-sorted batches, as evaluation runs)."""
    rows = training.forward_all(model, data.name, data.format, data.dev[0].encoded, tok, 8, torch.device("cpu"),
                                contextlib.nullcontext)
    return torch.tensor([list(r) for r in rows])


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def own_head_keys(model, task):
    """State-dict keys of a head's own layers (outside the shared encoder)."""
    prefix = model.heads[task].base_model_prefix
    return {f"heads.{task}.{k}" for k in model.heads[task].state_dict() if not k.startswith(prefix + ".")}


def lora_size(model, targets, r):
    """Parameters LoRA adds, from the plain model's layer shapes: r x (in + out) per adapted linear layer."""
    return sum(r * (m.in_features + m.out_features) for name, m in model.encoder.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rpartition(".")[2] in targets)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_only_adapters_and_heads_and_the_loss_falls(family, phase1, tiny_bench, tmp_path):
    tok = tokenizer(phase1[family])
    # Tagging: a task both random tiny models learn within 30 steps (pair classification does not, on the random XLM-R).
    params = hp(max_steps=30, eval_every_steps=30, epochs=1)
    data = task_data("udpos", params, tiny_bench, tok)
    model = build(phase1[family], data)
    plain_total = sum(p.numel() for p in model.parameters())
    head_size = sum(p.numel() for n, p in model.heads["udpos"].named_parameters()
                    if not n.startswith(model.heads["udpos"].base_model_prefix + "."))
    added = lora_size(model, DEFAULT_TARGETS[family], LORA["r"])
    assert added > 0
    adaptation.adapt(model, WITH_LORA)
    before_loss, before = mean_loss(model, data, tok), weights(model)

    result = training.train(model, [data], tok, params, 0, tmp_path / "ck", "fp")

    after = weights(model)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    lora_keys = {k for k in after if ".lora_" in k}
    base_keys = {k for k in after if k.startswith("encoder.") and k not in lora_keys}
    assert base_keys and not changed & base_keys, "a frozen encoder weight changed"
    assert {k for k in lora_keys if ".lora_B." in k} <= changed  # B starts at zero: every adapter trained
    assert own_head_keys(model, "udpos") <= changed  # the head trains in full
    assert changed <= lora_keys | own_head_keys(model, "udpos")
    assert result["parameters"] == {"trainable": added + head_size, "total": plain_total + added}
    assert mean_loss(model, data, tok) < 0.75 * before_loss


def _randomise_adapters(model):
    """Non-zero B matrices, so that the adapters change the outputs (a fresh B is zero)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.encoder.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


@pytest.mark.parametrize("family", FAMILIES)
def test_merged_model_equals_the_adapter_model_and_saves_a_plain_folder(family, phase1, tiny_bench, tmp_path):
    tok = tokenizer(phase1[family])
    data = task_data("mnli", hp(), tiny_bench, tok)
    model = build(phase1[family], data)
    plain_keys, plain_out = set(model.state_dict()), outputs(model, data, tok)
    adaptation.adapt(model, WITH_LORA)
    _randomise_adapters(model)
    adapted = outputs(model, data, tok)
    assert (adapted - plain_out).abs().max() > 1e-3, "the adapters must change the outputs for this test to mean anything"
    # The merged weight of one adapted layer, computed here: W + alpha / r * B A.
    layer = next(m for n, m in model.encoder.named_modules() if n.endswith(DEFAULT_TARGETS[family][0]))
    expected = layer.base_layer.weight + LORA["alpha"] / LORA["r"] * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    expected = expected.detach().clone()

    adaptation.finish(model, WITH_LORA)

    assert layer.base_layer.weight is not None and torch.allclose(layer.base_layer.weight, expected, **TOL)
    assert set(model.state_dict()) == plain_keys  # plain layers again, original names
    assert not hasattr(model.encoder, "peft_config")
    torch.testing.assert_close(outputs(model, data, tok), adapted, **TOL)

    model.save_head_model("mnli", tmp_path / "head", tok)
    model.save_encoder(tmp_path / "encoder", tok)
    for folder in ("head", "encoder"):
        names = {p.name for p in (tmp_path / folder).iterdir()}
        assert "model.safetensors" in names and not any("adapter" in n for n in names), names
        assert "lora" not in (tmp_path / folder / "config.json").read_text()
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "head")
    torch.testing.assert_close(outputs(MultiTaskModel(loaded.base_model, {"mnli": loaded}), data, tok), adapted, **TOL)
    encoder = transformers.AutoModel.from_pretrained(tmp_path / "encoder")
    assert set(encoder.state_dict()) == set(transformers.AutoModel.from_pretrained(phase1[family]).state_dict())


def test_phases_2_and_3_with_lora_on_the_decoder(phase1, tiny_bench, tmp_path):
    """Through the pipeline: the phase-2 encoder differs from phase 1 only in the adapted
    projections (merged adapters; every other weight frozen); phase 3 trains LoRA again on it,
    saves a plain classifier folder and predicts from it; both record their parameter counts."""
    params = hp(max_steps=4, eval_every_steps=4, epochs=1)
    job = {"tasks": ["mnli"], "task_hparams": {"mnli": params}, "hparams": params, "seed": 0, "examples_cap": None,
           "adaptation": WITH_LORA}
    pipeline.finetune_intermediate(job, phase1["qwen2"], tiny_bench, tmp_path / "phase2", tmp_path / "m2.json",
                                   tmp_path / "ck2", 1)
    before = transformers.AutoModel.from_pretrained(phase1["qwen2"]).state_dict()
    after = transformers.AutoModel.from_pretrained(tmp_path / "phase2").state_dict()
    assert set(before) == set(after)
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    adapted = {k for k in after if k.endswith(("q_proj.weight", "v_proj.weight"))}
    assert changed == adapted and len(adapted) == 4  # 2 blocks x (q, v)
    m2 = json.loads((tmp_path / "m2.json").read_text())["result"]["parameters"]
    assert 0 < m2["trainable"] < m2["total"] / 5

    target = {"training": "xnli", "hparams": params, "dev_sources": [["mnli", "dev", "en"]], "adaptation": WITH_LORA}
    record = pipeline.finetune_target(target, 0, tmp_path / "phase2", tiny_bench, tmp_path / "model",
                                      tmp_path / "m3.json", tmp_path / "ck3", 1)
    assert 0 < record["result"]["parameters"]["trainable"] < record["result"]["parameters"]["total"] / 5
    assert not any("adapter" in p.name for p in (tmp_path / "model").iterdir())
    saved = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert type(saved).__name__ == "Qwen2ForSequenceClassification"
    predict = {"training": "xnli", "hparams": params, "prediction": {}, "predict": {"xnli": ["de"]}}
    counts = pipeline.predict_target(predict, tmp_path / "model", tiny_bench, tmp_path / "pred", tmp_path / "p.json", 1)
    assert counts["predicted_examples"] == {"xnli/de": 60}


def test_a_preempted_lora_run_resumes_exactly(phase1, tiny_bench, tmp_path, monkeypatch):
    """Checkpoints hold the adapters (the model's state dict with LoRA layers); a run killed after
    its step-4 checkpoint resumes to the same weights as an uninterrupted run."""
    tok = tokenizer(phase1["xlm-roberta"])
    params = hp(max_steps=6, eval_every_steps=2, epochs=1)
    data = task_data("mnli", params, tiny_bench, tok)

    def fresh():
        model = build(phase1["xlm-roberta"], data)
        adaptation.adapt(model, {**WITH_LORA, "lora": {**LORA, "dropout": 0.1}})  # dropout draws from the RNG
        return model

    full = fresh()
    training.train(full, [data], tok, params, 0, tmp_path / "a", "fp")
    calls = {"n": 0}
    original = torch.optim.AdamW.step

    def preempt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("preempted")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", preempt)
    with pytest.raises(KeyboardInterrupt):
        training.train(fresh(), [data], tok, params, 0, tmp_path / "b", "fp")
    state = torch.load(tmp_path / "b" / "state.pt", map_location="cpu", weights_only=True)
    assert state["state"]["step"] == 4 and any(".lora_A." in k for k in state["model"])
    monkeypatch.undo()
    resumed = fresh()
    training.train(resumed, [data], tok, params, 0, tmp_path / "b", "fp")
    a, b = weights(full), weights(resumed)
    assert any(".lora_B." in k for k in a) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_lora_job_resumed_at_its_last_step_writes_the_same_bytes(phase1, tiny_bench, tmp_path, monkeypatch):
    params = hp(max_steps=3, eval_every_steps=1, epochs=1)
    job = {"training": "xnli", "hparams": params, "dev_sources": [["mnli", "dev", "en"]], "adaptation": WITH_LORA}

    def run(out):
        pipeline.finetune_target(job, 0, phase1["qwen2"], tiny_bench, out / "model", out / "metrics.json", out / "ck", 1)

    run(tmp_path / "full")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the final checkpoint")

    monkeypatch.setattr(MultiTaskModel, "save_head_model", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    monkeypatch.undo()
    run(tmp_path / "resumed")
    files = {}
    for name in ("full", "resumed"):
        root = tmp_path / name
        files[name] = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert "model/model.safetensors" in files["full"] and sorted(files["full"]) == sorted(files["resumed"])
    assert [n for n in files["full"] if files["full"][n] != files["resumed"][n]] == []


def _loss_and_grads(model, task, batch, checkpoint):
    """One training forward and backward (dropout on, fixed seed); counts the runs of the first
    block's attention (a checkpointed block's inner modules run again in backward)."""
    if checkpoint:
        adaptation.set_gradient_checkpointing(model, True)
    block = next(m for m in model.encoder.modules() if type(m).__name__.endswith("Layer"))
    runs = {"n": 0}
    hook = next(block.children()).register_forward_hook(lambda *_: runs.__setitem__("n", runs["n"] + 1))
    model.train()
    torch.manual_seed(7)
    loss = model(task, **batch).loss
    loss.backward()
    hook.remove()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, runs["n"]


@pytest.mark.parametrize("lora", [None, LORA], ids=["full", "lora"])
@pytest.mark.parametrize("fmt, itask", [(PAIR, "mnli"), (CHOICE, "hellaswag")])
@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(family, fmt, itask, lora, phase1, tiny_bench):
    """Each head format on each family (the decoder's multiple choice is the ChoiceScoringModel):
    with checkpointing every block runs twice (forward, recomputed in backward), and the loss and
    every gradient are those of the run without it."""
    tok = tokenizer(phase1[family])
    data = task_data(itask, hp(), tiny_bench, tok)
    batch = training.collator(data.format, tok, data.hp)(data.train.features[:4])
    results = []
    for checkpoint in (False, True):
        model = build(phase1[family], data)
        adaptation.adapt(model, {"lora": lora, "gradient_checkpointing": False})
        results.append(_loss_and_grads(model, itask, batch, checkpoint))
    (loss, grads, runs), (ck_loss, ck_grads, ck_runs) = results
    assert (runs, ck_runs) == (1, 2)
    assert ck_loss == pytest.approx(loss, abs=1e-6)
    assert grads and set(ck_grads) == set(grads)
    if lora:
        assert all(".lora_" in n or not n.startswith("encoder.") for n in grads)
    for name in grads:
        torch.testing.assert_close(ck_grads[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)
    adaptation.set_gradient_checkpointing(model, False)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    assert not model.encoder.get_input_embeddings()._forward_hooks  # the model is as it was before


def test_a_model_type_without_peft_defaults_needs_target_modules():
    """ModernBERT has no entry in peft's table: the error names the type, the option and its layers."""
    config = transformers.ModernBertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
                                           bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
    model = MultiTaskModel.build(config, {"t": HeadSpec(PAIR, ("a", "b"))})
    with pytest.raises(ConfigError, match=r"no default LoRA target modules for model type 'modernbert': set "
                                          r"models\[\]\.lora\.target_modules .*linear layers: Wi, Wo, Wqkv"):
        adaptation.adapt(model, WITH_LORA)
    with pytest.raises(ConfigError, match=r"models\[\]\.lora\.target_modules.*Wqkv"):
        adaptation.adapt(model, {**WITH_LORA, "lora": {**LORA, "target_modules": ["q_proj"]}})
    adaptation.adapt(model, {**WITH_LORA, "lora": {**LORA, "target_modules": ["Wqkv"]}})
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n}
    assert adapted == {"encoder.layers.0.attn.Wqkv"}
