"""The cross-model comparison: table, verdicts, figure and paper section from per-model files.

Three models on two targets (XNLI, PAN-X), two intermediate tasks and multi-task; every expected
number below is computed from the fixture's scores, not read back from the module.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from test_workflow import job_counts, snakemake
from xstilts import comparison, paper, tables
from xstilts.paper_build import toolchain_available

CAPTIONS = tables.load_captions(ROOT / "paper" / "captions.yaml")
TARGETS = ["xnli", "panx"]
ROWS = ["baseline", "mnli", "squad_v1", "multitask"]

# model -> (family, encoder -> (xnli, panx) test scores, target -> the pick chosen on dev)
MODELS = {
    "enc-a": ("encoder", {"baseline": (70.0, 50.0), "mnli": (74.0, 49.0), "squad_v1": (71.0, 56.0),
                          "multitask": (72.0, 52.0)}, {"xnli": "mnli", "panx": "squad_v1"}),
    # Dev picks the worse task for neither target here; a decoder whose picks gain a point each.
    "dec-b": ("decoder", {"baseline": (60.0, 40.0), "mnli": (58.0, 41.0), "squad_v1": (61.0, 38.0),
                          "multitask": (59.0, 39.0)}, {"xnli": "squad_v1", "panx": "mnli"}),
    # Dev picks MNLI for XNLI although it loses a point on test.
    "enc-c": ("encoder", {"baseline": (80.0, 70.0), "mnli": (79.0, 69.0), "squad_v1": (78.0, 73.0),
                          "multitask": (80.0, 70.0)}, {"xnli": "mnli", "panx": "squad_v1"}),
}

# (model, target, itask) -> verdict; gains are arbitrary but distinct.
VERDICTS = {
    ("enc-a", "xnli", "mnli"): "helps", ("enc-a", "xnli", "squad_v1"): "n.s.",
    ("enc-a", "xcopa", "mnli"): "hurts", ("enc-a", "xcopa", "squad_v1"): "helps",
    ("enc-a", "avg", "mnli"): "n.s.", ("enc-a", "avg", "squad_v1"): "helps",
    ("dec-b", "xnli", "mnli"): "hurts", ("dec-b", "xnli", "squad_v1"): "hurts",
    ("dec-b", "xcopa", "mnli"): "n.s.", ("dec-b", "xcopa", "squad_v1"): "n.s.",
    ("dec-b", "avg", "mnli"): "hurts", ("dec-b", "avg", "squad_v1"): "hurts",
}
GAIN_OF = {"helps": 3.0, "hurts": -2.0, "n.s.": 0.5}


def _avg(values) -> float:
    return sum(values) / len(values)


def write_model(tmp_path: Path, name: str, with_significance: bool = True) -> comparison.ModelInput:
    family, scores, best = MODELS[name]
    folder = tmp_path / name
    means = pd.DataFrame({t: [scores[r][i] for r in ROWS] for i, t in enumerate(TARGETS)}, index=ROWS)
    means["avg"] = means[TARGETS].mean(axis=1)
    sds = means * 0 + 0.5
    # The real producer of matrix.csv (rule make_tables), with seed spread columns.
    tables.write_table(means, sds, folder / "matrix", "caption", "tab:x")
    (folder / "best_per_target.json").write_text(json.dumps({"best_per_target": best, "headline": []}))
    significance = None
    if with_significance:
        comparisons = []
        for itask in ("mnli", "squad_v1"):
            for target in ("xnli", "xcopa", "avg"):
                verdict = VERDICTS[(name, target, itask)]
                gain = GAIN_OF[verdict]
                comparisons.append({"target": target, "itask": itask, "baseline": 50.0, "system": 50.0 + gain,
                                    "gain": gain, "gain_sd": None, "low": gain - 1.0, "high": gain + 1.0,
                                    "p": 0.01, "verdict": verdict, "languages": {}})
        significance = folder / "significance.json"
        significance.write_text(json.dumps({"targets": ["xnli", "xcopa"], "comparisons": comparisons}))
    return comparison.ModelInput(name, family, folder / "matrix.csv", folder / "best_per_target.json", significance)


@pytest.fixture()
def inputs(tmp_path):
    return [write_model(tmp_path, "enc-a"), write_model(tmp_path, "dec-b"),
            write_model(tmp_path, "enc-c", with_significance=False)]


def expected_best_gains(name: str) -> dict[str, float]:
    _, scores, best = MODELS[name]
    gains = {t: scores[best[t]][i] - scores["baseline"][i] for i, t in enumerate(TARGETS)}
    gains["avg"] = _avg([scores[best[t]][i] for i, t in enumerate(TARGETS)]) - _avg(scores["baseline"])
    return gains


# ------------------------------------------------------------------------------ the table


def test_long_table_has_every_gain_over_each_models_own_baseline(inputs):
    frame = comparison.gains_frame(inputs)
    assert list(dict.fromkeys(frame["model"])) == ["enc-a", "dec-b", "enc-c"]  # the given order
    assert set(zip(frame["model"], frame["family"])) == {("enc-a", "encoder"), ("dec-b", "decoder"),
                                                         ("enc-c", "encoder")}
    for name, (_, scores, _) in MODELS.items():
        mine = frame[frame["model"] == name]
        for encoder in ROWS:
            rows = mine[(mine["encoder"] == encoder) & (mine["row"] != "best_on_dev")].set_index("target")
            for i, t in enumerate(TARGETS):
                assert rows.at[t, "score"] == pytest.approx(scores[encoder][i])
                assert rows.at[t, "gain"] == pytest.approx(scores[encoder][i] - scores["baseline"][i])
            assert rows.at["avg", "gain"] == pytest.approx(_avg(scores[encoder]) - _avg(scores["baseline"]))
            assert rows.at["xnli", "score_sd"] == 0.5
        best = mine[mine["row"] == "best_on_dev"].set_index("target")
        assert best["gain"].to_dict() == pytest.approx(expected_best_gains(name))
    assert set(frame["row"]) == {"baseline", "intermediate", "multitask", "best_on_dev"}
    # The numbers the text leans on: A +4, +6, +5; B +1, +1, +1; C -1, +3, +1.
    assert expected_best_gains("enc-a") == {"xnli": 4.0, "panx": 6.0, "avg": 5.0}
    assert expected_best_gains("enc-c") == {"xnli": -1.0, "panx": 3.0, "avg": 1.0}


def test_written_tables(inputs, tmp_path):
    frame = comparison.gains_frame(inputs)
    comparison.write_models_table(frame, tmp_path / "out/models", "Cap & co")
    back = pd.read_csv(tmp_path / "out/models.csv", keep_default_na=False, na_values=[""])
    assert len(back) == len(frame) == 3 * (3 * 4 + 3)  # 3 targets x 4 rows + 3 best rows, per model
    md = (tmp_path / "out/models.md").read_text()
    assert md.startswith("Cap & co\n")
    assert re.search(r"\|\s+enc-a \|\s+encoder \|\s+60\.0 \|\s+\+4\.0 \|\s+\+6\.0 \|\s+\+5\.0 \|", md)
    assert re.search(r"\|\s+dec-b \|\s+decoder \|\s+50\.0 \|\s+\+1\.0 \|\s+\+1\.0 \|\s+\+1\.0 \|", md)
    tex = (tmp_path / "out/models.tex").read_text()
    assert r"\toprule" in tex and r"\label{tab:models}" in tex and r"\caption{Cap \& co}" in tex
    assert r"enc-c & encoder & 75.0 & -1.0 & +3.0 & +1.0 \\" in tex


def test_verdict_table(inputs, tmp_path):
    verdicts = comparison.verdicts_frame(inputs)
    assert len(verdicts) == 12  # enc-c has no significance record
    assert dict(zip(zip(verdicts["model"], verdicts["target"], verdicts["itask"]), verdicts["verdict"])) == VERDICTS
    comparison.write_verdicts_table(verdicts, tmp_path / "v", "Verdicts")
    tex = (tmp_path / "v.tex").read_text()
    assert r"enc-a & encoder & MNLI & +3.0 helps & -2.0 hurts & +0.5 n.s. \\" in tex
    assert r" &  & SQuAD v1.1 & +0.5 n.s. & +3.0 helps & +3.0 helps \\" in tex
    assert tex.count(r"\midrule") == 2  # under the header, and between the two models
    assert "XCOPA" in tex and "Reasoning avg." in tex


def test_a_run_without_reasoning_analysis_says_so(tmp_path):
    verdicts = comparison.verdicts_frame([write_model(tmp_path, "enc-c", with_significance=False)])
    comparison.write_verdicts_table(verdicts, tmp_path / "v", "Verdicts")
    assert "no reasoning analysis in this run" in (tmp_path / "v.tex").read_text()
    assert len(pd.read_csv(tmp_path / "v.csv")) == 0


def test_models_on_different_targets_or_unknown_picks_are_errors(inputs, tmp_path):
    odd = pd.read_csv(inputs[1].matrix, index_col=0).drop(columns=["panx", "panx_sd"])
    odd.to_csv(inputs[1].matrix)
    with pytest.raises(comparison.FormatError, match=r"targets \['xnli'\], but .* has \['xnli', 'panx'\]"):
        comparison.gains_frame(inputs)
    Path(inputs[2].best).write_text(json.dumps({"best_per_target": {"xnli": "qqp"}}))
    with pytest.raises(comparison.FormatError, match=r"picks \['qqp'\], which are not rows"):
        comparison.gains_frame([inputs[2]])
    with pytest.raises(ValueError, match="model names repeat"):
        comparison.gains_frame([inputs[0], inputs[0]])


# ------------------------------------------------------------------------------ family


def test_the_family_comes_from_the_models_config(tmp_path):
    from transformers import Qwen2Config, XLMRobertaConfig

    # Folder names say the opposite of the truth: only the config may decide.
    XLMRobertaConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                     intermediate_size=8).save_pretrained(tmp_path / "decoder-like-name")
    Qwen2Config(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1,
                intermediate_size=8).save_pretrained(tmp_path / "xlmr-encoder")
    assert comparison.read_family(tmp_path / "decoder-like-name") == "encoder"
    assert comparison.read_family(tmp_path / "xlmr-encoder") == "decoder"
    with pytest.raises(comparison.FormatError, match="no config.json"):
        comparison.read_family(tmp_path / "missing")


# ------------------------------------------------------------------------------ the section


def _macros(text: str) -> dict[str, str]:
    return dict(re.findall(r"\\newcommand\{(\\Models[A-Za-z]+)\}\{([^\n]*)\}\n", text))


def test_section_macros_answer_per_family(inputs):
    frame, verdicts = comparison.gains_frame(inputs), comparison.verdicts_frame(inputs)
    macros_text, body = comparison.section(frame, verdicts, {"synthetic": False})
    macros = _macros(macros_text)
    a, c = expected_best_gains("enc-a")["avg"], expected_best_gains("enc-c")["avg"]
    assert macros[r"\ModelsCount"] == "3" and macros[r"\ModelsItasks"] == "2" and macros[r"\ModelsTargets"] == "2"
    assert macros[r"\ModelsEncoderCount"] == "2" and macros[r"\ModelsDecoderCount"] == "1"
    assert macros[r"\ModelsEncoderMeanBestGain"] == f"{(a + c) / 2:+.1f}" == "+3.0"
    assert macros[r"\ModelsEncoderMinBestGain"] == "+1.0" and macros[r"\ModelsEncoderMaxBestGain"] == "+5.0"
    assert macros[r"\ModelsEncoderPositive"] == "2"
    assert macros[r"\ModelsEncoderMeanBaseline"] == f"{(_avg([70, 50]) + _avg([80, 70])) / 2:.1f}" == "67.5"
    assert macros[r"\ModelsDecoderMeanBestGain"] == "+1.0"
    # Verdict counts, from the fixture's verdicts.
    for family, names in (("encoder", {"enc-a", "enc-c"}), ("decoder", {"dec-b"})):
        for target in ("xnli", "xcopa", "avg"):
            mine = [v for (m, t, _), v in VERDICTS.items() if m in names and t == target]
            key = r"\Models" + family.capitalize() + target.capitalize()
            assert macros[key + "Pairs"] == str(len(mine))
            assert macros[key + "Helps"] == str(mine.count("helps"))
            assert macros[key + "Hurts"] == str(mine.count("hurts"))
            assert macros[key + "Ns"] == str(mine.count("n.s."))
    assert macros[r"\ModelsEncoderXnliHelps"] == "1" and macros[r"\ModelsDecoderXnliHurts"] == "2"
    assert macros[r"\ModelsModelEncA"] == "enc-a"
    assert macros[r"\ModelsModelEncABestGain"] == "+5.0" and macros[r"\ModelsModelDecBBaseline"] == "50.0"
    # The answers follow the numbers: encoders gain, reasoning gains outnumber losses (3 vs 1);
    # the decoder gains on transfer but its significant reasoning results are all losses.
    assert "for encoders: intermediate training chosen on dev raises" in body
    assert "significant gains outnumber significant losses" in body
    assert "for decoders: intermediate training chosen on dev raises" in body
    assert "significant losses outnumber significant gains" in body
    assert "Caveat" not in body


def test_the_section_quotes_only_macros_and_the_demo_says_so(inputs):
    frame, verdicts = comparison.gains_frame(inputs), comparison.verdicts_frame(inputs)
    macros_text, body = comparison.section(frame, verdicts, {"synthetic": True})
    assert "Caveat: embedded demo" in body
    text = body.split("\n", 2)[2]
    assert not any(ch.isdigit() for ch in text)  # every number is a macro, model names too
    used = set(re.findall(r"\\Models[A-Za-z]+", text))
    assert used and used <= set(_macros(macros_text))


def test_a_family_without_reasoning_and_a_loss_on_transfer(tmp_path):
    model = write_model(tmp_path, "enc-c", with_significance=False)
    # A worse pick on dev for both targets: -1 and -1.
    Path(model.best).write_text(json.dumps({"best_per_target": {"xnli": "mnli", "panx": "mnli"}}))
    frame = comparison.gains_frame([model])
    macros_text, body = comparison.section(frame, comparison.verdicts_frame([model]), {})
    assert _macros(macros_text)[r"\ModelsEncoderMeanBestGain"] == "-1.0"
    assert "lowers zero-shot cross-lingual transfer on average; this run has no reasoning analysis." in body
    assert "Decoders" not in body and _macros(macros_text)[r"\ModelsDecoderCount"] == "0"


def test_a_target_without_a_dev_pick_leaves_the_average_open(inputs):
    # enc-c has no pick for PAN-X: its best-on-dev average, and so its family's mean, are unknown.
    Path(inputs[2].best).write_text(json.dumps({"best_per_target": {"xnli": "mnli"}}))
    frame = comparison.gains_frame(inputs)
    best = frame[(frame["model"] == "enc-c") & (frame["row"] == "best_on_dev")].set_index("target")["gain"]
    assert best["xnli"] == -1.0 and "panx" not in best.index and pd.isna(best["avg"])
    macros_text, body = comparison.section(frame, comparison.verdicts_frame(inputs), {})
    macros = _macros(macros_text)
    assert macros[r"\ModelsModelEncCBestGain"] == macros[r"\ModelsEncoderMeanBestGain"] == r"\mbox{n/a}"
    assert macros[r"\ModelsDecoderMeanBestGain"] == "+1.0"
    assert "no best-on-dev gain on the average could be computed" in body
    assert "for encoders: the transfer question is open" in body


def test_model_names_that_share_a_macro_are_an_error(tmp_path):
    a = write_model(tmp_path, "enc-a")
    twin = comparison.ModelInput("enc_a", "decoder", a.matrix, a.best)
    frame = comparison.gains_frame([a, twin])
    with pytest.raises(ValueError, match=r"'enc-a' and 'enc_a' give the same macro name \\ModelsModelEncA"):
        comparison.section(frame, comparison.verdicts_frame([a, twin]), {})


# ------------------------------------------------------------------------------ outputs and paper


def test_make_comparison_writes_every_output(inputs, tmp_path):
    out = tmp_path / "comparison"
    record = comparison.make_comparison(inputs, out, CAPTIONS, {"seeds": [0, 1], "synthetic": True},
                                        style=ROOT / "paper/figures.mplstyle")
    assert record["models"][1] == {"name": "dec-b", "family": "decoder"}
    for name in ("models.csv", "models.md", "models.tex", "reasoning_verdicts.csv", "reasoning_verdicts.md",
                 "reasoning_verdicts.tex", "model_gains.png", "model_gains.pdf", "generated/models.tex",
                 "generated/models_macros.tex"):
        assert (out / name).stat().st_size > 0, name
    assert "mean over 2 seeds" in (out / "models.md").read_text()
    assert (out / "model_gains.png").read_bytes()[:4] == b"\x89PNG"


def test_the_section_references_only_the_comparison_outputs():
    sources, generated = paper.paper_files(ROOT / "paper", "sections/models.tex")
    assert sources == ["sections/models.tex"]
    assert generated == ["comparison/generated/models.tex", "comparison/generated/models_macros.tex",
                         "comparison/model_gains.pdf", "comparison/models.tex", "comparison/reasoning_verdicts.tex"]


def test_dry_run_lists_the_comparison_rule(tmp_path):
    counts = job_counts(snakemake("-n", "--directory", str(tmp_path), "results/demo/comparison/models.csv").stdout)
    assert counts["make_model_comparison"] == 1
    # It needs each model's (the demo has two) tables, picks and (the demo has the analysis) significance record.
    assert counts["make_tables"] == counts["make_paper_inputs"] == counts["bootstrap_reasoning_gains"] == 2


def test_the_rule_runs_its_script_on_placed_inputs(tmp_path):
    # The per-model inputs placed by hand (with manifests, as their rules would leave them), then
    # only make_model_comparison runs: the rule's glue, params and outputs, through Snakemake.
    from transformers import Qwen2Config, XLMRobertaConfig

    from xstilts import manifest

    run = tmp_path / "work/results/demo"
    # The demo's two models: the encoder gets enc-a's numbers, the decoder dec-b's.
    configs = {"xlmr-demo": ("enc-a", XLMRobertaConfig), "qwen2-demo": ("dec-b", Qwen2Config)}
    for model, (fixture, config) in configs.items():
        source = write_model(tmp_path / "src", fixture)
        placed = {f"tables/{model}/matrix.csv": source.matrix, f"paper/{model}/best_per_target.json": source.best,
                  f"reasoning/{model}/significance.json": source.significance}
        for name, path in placed.items():
            (run / name).parent.mkdir(parents=True, exist_ok=True)
            (run / name).write_bytes(Path(path).read_bytes())
            manifest.write(run / name, "placed by the test")
        config(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
               intermediate_size=8).save_pretrained(run / f"encoders/{model}/baseline")
        manifest.write(run / f"encoders/{model}/baseline", "placed by the test")
    snakemake("results/demo/comparison/models.csv", "--cores", "1", "--directory", str(tmp_path / "work"),
              "--allowed-rules", "make_model_comparison")
    out = run / "comparison"
    back = pd.read_csv(out / "models.csv", keep_default_na=False, na_values=[""])
    # The families come from the configs.
    assert dict(zip(back["model"], back["family"])) == {"xlmr-demo": "encoder", "qwen2-demo": "decoder"}
    for model, (fixture, _) in configs.items():
        mine = back[(back["model"] == model) & (back["row"] == "best_on_dev")]
        assert mine.set_index("target")["gain"].to_dict() == pytest.approx(expected_best_gains(fixture))
    macros = _macros((out / "generated/models_macros.tex").read_text())
    assert macros[r"\ModelsEncoderCount"] == "1" and macros[r"\ModelsDecoderCount"] == "1"
    assert macros[r"\ModelsEncoderXnliHelps"] == "1"
    assert "Caveat: embedded demo" in (out / "generated/models.tex").read_text()  # the demo is synthetic
    assert (out / "model_gains.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.skipif(not toolchain_available() and os.environ.get("XSTILTS_REQUIRE_TEX") != "1",
                    reason="no TeX toolchain (scripts/install_tex.sh)")
def test_the_section_compiles(inputs, tmp_path):
    from xstilts.paper_build import compile_pdf

    out = tmp_path / "comparison"
    comparison.make_comparison(inputs, out, CAPTIONS, {"seeds": [0], "synthetic": True},
                               style=ROOT / "paper/figures.mplstyle")
    src = tmp_path / "paper"
    (src / "sections").mkdir(parents=True)
    (src / "sections/models.tex").write_text((ROOT / "paper/sections/models.tex").read_text())
    (src / "main.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\n"
                                  "\\begin{document}\\input{sections/models.tex}\\end{document}\n")
    _, names = paper.paper_files(src, "main.tex")
    generated = {name: out / name.split("/", 1)[1] for name in names}
    compile_pdf(src / "main.tex", generated, tmp_path / "build", tmp_path / "paper.pdf")
    log = (tmp_path / "build/main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "LaTeX Warning: Reference" not in log
