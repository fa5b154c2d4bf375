"""The +MLM variant's training: the model's own pretrained LM head, the step share, the selection.

For both families (a tiny XLM-R masked LM and a tiny Qwen2 causal LM, saved as phase-1 folders):
the LM head of a variant run is the checkpoint's, weight for weight, before any training, and
tied to the shared encoder's embeddings; a folder without a head is refused. A whole variant job
(``pipeline.finetune_intermediate``) trains the task's own steps plus the LM share on top, and
the task's dev metric alone selects its checkpoint.
"""

from __future__ import annotations

import json
import math

import pytest

from test_decoders import FAMILIES, config, tokenizer_dirs  # noqa: F401 (fixture)
from xstilts.tasks import NLI_LABELS, PAIR, TEXT

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def phase1(tokenizer_dirs, tmp_path_factory):  # noqa: F811
    """family -> a phase-1 folder (LM head model + tokenizer), as pretrain_mlm saves it."""
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pipeline import _load_tokenizer
    from xstilts.training import set_seed

    out = {}
    for family in FAMILIES:
        tok = _load_tokenizer(tokenizer_dirs[family])
        set_seed(1)
        folder = tmp_path_factory.mktemp(f"phase1-{family}")
        model = MultiTaskModel.build(config(tok, family), {"mlm": HeadSpec(TEXT)})
        with torch.no_grad():  # "pretrained": no tensor left at its initial value (LayerNorm's ones)
            for param in model.parameters():
                param.add_(0.01 * torch.randn_like(param))
        model.save_head_model("mlm", folder, tok)
        out[family] = folder
    return out


def _head_only(model):
    """The LM head's own tensors (outside the base model), by name."""
    from xstilts.modeling import hf_model

    inner = hf_model(model)
    prefix = inner.base_model_prefix + "."
    return {k: v for k, v in inner.state_dict().items() if not k.startswith(prefix)}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_lm_head_is_the_checkpoints_and_tied_to_the_shared_encoder(phase1, family):
    from xstilts.modeling import HeadSpec, MultiTaskModel, head_class
    from transformers import AutoConfig

    folder = phase1[family]
    cls = head_class(TEXT, AutoConfig.from_pretrained(folder))
    reference = _head_only(cls.from_pretrained(folder))
    assert reference, "the checkpoint has head tensors to compare"
    specs = {"mnli": HeadSpec(PAIR, NLI_LABELS), "mlm": HeadSpec(TEXT, pretrained=True)}
    model = MultiTaskModel.build(folder, specs)
    kept = _head_only(model.heads["mlm"])
    assert kept.keys() == reference.keys()
    for name in reference:
        assert torch.equal(kept[name], reference[name]), name
    # The output projection is the shared encoder's input embeddings (tied), not a copy.
    embeddings = model.encoder.get_input_embeddings().weight
    assert model.heads["mlm"].get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()
    # A fresh head (the default) is not the checkpoint's, so the comparison above can fail, where
    # the head has tensors of its own (XLM-R's dense + norm + bias; the tiny Qwen2's head is
    # its tied embeddings alone, kept by keeping the encoder).
    fresh_model = MultiTaskModel.build(folder, {"mlm": HeadSpec(TEXT)})
    fresh = _head_only(fresh_model.heads["mlm"])
    tied = fresh_model.encoder.get_input_embeddings().weight.data_ptr()
    own = [n for n in reference if fresh[n].data_ptr() != tied and n.endswith("weight")]
    assert bool(own) == (family == "xlm-roberta")
    assert all(not torch.equal(fresh[n], reference[n]) for n in own)


def test_a_folder_without_an_lm_head_is_refused(phase1, tmp_path):
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pipeline import _load_tokenizer

    folder = phase1["xlm-roberta"]
    bare = tmp_path / "bare"
    MultiTaskModel.build(folder, {"mnli": HeadSpec(PAIR, NLI_LABELS)}).save_encoder(bare, _load_tokenizer(folder))
    with pytest.raises(ValueError, match=r"no pretrained .*MaskedLM head"):
        MultiTaskModel.build(bare, {"mlm": HeadSpec(TEXT, pretrained=True)})


def test_schedule_shares_are_the_step_shares():
    import numpy as np

    from xstilts import training
    from xstilts.features import Encoded

    def task(name, n):
        feats = [{"input_ids": [0, 1, 2]} for _ in range(n)]
        return training.TaskData(name, PAIR, "accuracy", {"batch_size": 2, "grad_accum": 1},
                                 train=Encoded(feats, list(range(n))))

    # Sizes 1000:10 would draw the big task 99 % of the time; shares 0.7/0.3 override them.
    stream = training.schedule([task("a", 1000), task("b", 10)], 0, shares=[0.7, 0.3])
    draws = np.array([next(stream)[0] for _ in range(4000)])
    assert abs((draws == 1).mean() - 0.3) < 0.03


@pytest.mark.parametrize("family", FAMILIES)
def test_a_variant_job_trains_task_steps_plus_the_lm_share_and_selects_on_the_task(phase1, family, tmp_path):
    from xstilts import synthetic
    from xstilts.config import hparam_defaults
    from xstilts.pipeline import finetune_intermediate

    data = tmp_path / "data"
    layout = {"mnli": {"train": ["en"], "dev": ["en"]}, "mlm_corpus": {"train": ["en", "de"]}}
    synthetic.generate(synthetic.SyntheticSpec(seed=4, layout=layout,
                                               sizes={"mnli": {"train": 96, "dev": 30}, "mlm_corpus": {"train": 200}}), data)
    hp = {**hparam_defaults(), "learning_rate": 1e-3, "epochs": 2, "batch_size": 16, "grad_accum": 1,
          "max_seq_length": 48, "eval_every_steps": 3, "mixed_precision": "no"}
    job = {"itask": "mnli+mlm", "tasks": ["mnli"], "hparams": hp, "task_hparams": {"mnli": hp}, "seed": 0,
           "examples_cap": None, "adaptation": {"lora": None, "gradient_checkpointing": False},
           "variant": {"name": "mlm", "task": "mnli", "train": [["mnli", "train", "en"]], "dev": [["mnli", "dev", "en"]],
                       "share": 0.25, "selection": "task", "languages": ["en", "de"], "hparams": hp}}
    metrics = tmp_path / "metrics.json"
    finetune_intermediate(job, phase1[family], data, tmp_path / "encoder", metrics, tmp_path / "ck", 1)
    result = json.loads(metrics.read_text())["result"]
    own = 2 * math.ceil(96 / 16)  # MNLI's steps in its plain run: 2 epochs of 6 batches
    assert result["steps"] == math.ceil(own / (1 - 0.25)) == 16
    history = result["history"]
    assert all({"mnli", "mlm"} <= set(h["dev"]) for h in history)
    # The dev score that selects is MNLI's accuracy alone, never mixed with the LM loss.
    assert [h["dev_score"] for h in history] == [h["dev"]["mnli"]["score"] for h in history]
    best = max(history, key=lambda h: (h["dev_score"], -h["step"]))
    assert result["best_step"] == best["step"]
    assert (tmp_path / "encoder" / "config.json").is_file()
