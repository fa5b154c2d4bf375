"""The reasoning analysis as a table, a figure and a paper section (numbers as LaTeX macros).

Everything here is drawn from the record that ``significance.analyse`` writes
(``results/<run>/reasoning/<model>/significance.json``), never from typed-in numbers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from xstilts.latex import command_name
from xstilts.tasks import display_name

AVERAGE_NAME = "Reasoning avg."
VERDICT_TEXT = {"helps": "helps", "hurts": "hurts", "n.s.": "n.s."}


def _name(key: str) -> str:
    return AVERAGE_NAME if key == "avg" else display_name(key)


def _tex(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text)


def _signed(x: float, digits: int = 1) -> str:
    return f"{x:+.{digits}f}"


def _p(p: float, resamples: int) -> str:
    return f"<{1 / resamples:.3f}" if p == 0 else f"{p:.3f}"


# --------------------------------------------------------------------------------------------
# Tables


def significance_frame(record: dict[str, Any]) -> pd.DataFrame:
    """One row per (target, intermediate task): the numbers of the significance table."""
    rows = []
    for c in record["comparisons"]:
        counts = c.get("counts", {})
        rows.append({
            "target": c["target"], "itask": c["itask"], "baseline": c["baseline"], "system": c["system"],
            "gain": c["gain"], "gain_sd": c["gain_sd"], "ci_low": c["low"], "ci_high": c["high"], "p": c["p"],
            "verdict": c["verdict"],
            "languages": len(c["languages"]) if c["languages"] else None,
            "improved": counts.get("improved"), "hurt": counts.get("hurt"),
            "sig_improved": counts.get("sig_improved"), "sig_hurt": counts.get("sig_hurt"),
            "hurt_languages": " ".join(c.get("hurt_languages", [])),
            "significantly_hurt_languages": " ".join(c.get("significantly_hurt_languages", [])),
        })
    return pd.DataFrame(rows)


def language_frame(record: dict[str, Any]) -> pd.DataFrame:
    """One row per (target, language, intermediate task): per-language gains and intervals."""
    rows = []
    for c in record["comparisons"]:
        for lang, v in c["languages"].items():
            rows.append({"target": c["target"], "lang": lang, "itask": c["itask"], "baseline": v["baseline"],
                         "system": v["system"], "gain": v["gain"], "ci_low": v["low"], "ci_high": v["high"],
                         "p": v["p"], "verdict": _verdict(v["low"], v["high"])})
    return pd.DataFrame(rows)


def _verdict(low: float, high: float) -> str:
    from xstilts.significance import verdict

    return verdict(low, high)


def _display_rows(record: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    boot = record["bootstrap"]
    conf = f"{round(100 * boot['confidence'])}%"
    header = ["Target", "Intermediate task", "Baseline", "Gain (seeds)", f"{conf} CI", "p", "Verdict",
              "Langs +/− (sig.)", "Sig. hurt languages"]
    rows = []
    for c in record["comparisons"]:
        spread = "" if c["gain_sd"] is None else f" ± {c['gain_sd']:.1f}"
        counts = c.get("counts")
        langs = (f"{counts['improved']}/{counts['hurt']} ({counts['sig_improved']}/{counts['sig_hurt']})"
                 if counts else "")
        rows.append([_name(c["target"]), _name(c["itask"]), f"{c['baseline']:.1f}", f"{_signed(c['gain'])}{spread}",
                     f"[{_signed(c['low'])}, {_signed(c['high'])}]", _p(c["p"], boot["resamples"]),
                     VERDICT_TEXT[c["verdict"]], langs, " ".join(c.get("significantly_hurt_languages", [])) or "–"])
    return header, rows


def caption(record: dict[str, Any]) -> str:
    boot = record["bootstrap"]
    n = len(record["seeds"])
    return (f"Does English intermediate-task training improve zero-shot cross-lingual reasoning? Gain of each "
            f"intermediate task over the baseline (accuracy points, mean over languages; ± sd over {n} "
            f"seed{'s' if n > 1 else ''}), {round(100 * boot['confidence'])}% paired bootstrap interval over test "
            f"examples (seeds pooled, {boot['resamples']} resamples, not corrected for multiple comparisons), "
            f"verdict (helps/hurts: the interval excludes 0), and languages improved/hurt (significantly).")


def write_tables(record: dict[str, Any], stem: str | Path, languages_csv: str | Path) -> list[str]:
    """``<stem>.csv`` (full precision), ``.md`` and ``.tex`` (booktabs) and the per-language CSV."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    significance_frame(record).to_csv(f"{stem}.csv", index=False, float_format="%.4f", lineterminator="\n")
    language_frame(record).to_csv(languages_csv, index=False, float_format="%.4f", lineterminator="\n")
    header, rows = _display_rows(record)
    md = pd.DataFrame(rows, columns=header).to_markdown(index=False, stralign="right", disable_numparse=True)
    Path(f"{stem}.md").write_text(f"{caption(record)}\n\n{md}\n", encoding="utf-8")
    lines = [r"\begin{table*}[t]", r"\centering", r"\small", r"\begin{tabular}{ll" + "r" * 5 + "lr}", r"\toprule",
             " & ".join(_tex(h) for h in header).replace("±", r"$\pm$").replace("−", "$-$") + r" \\", r"\midrule"]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append(r"\midrule")
        previous = row[0]
        lines.append(" & ".join(_tex(cell) for cell in row).replace("±", r"$\pm$").replace("–", "--")
                     .replace("<", r"$<$") + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"\\caption{{{_tex(caption(record))}}}".replace("±", r"$\pm$"),
              r"\label{tab:reasoning-significance}", r"\end{table*}", ""]
    Path(f"{stem}.tex").write_text("\n".join(lines), encoding="utf-8")
    return [f"{stem}.csv", f"{stem}.md", f"{stem}.tex", str(languages_csv)]


# --------------------------------------------------------------------------------------------
# Figure


COLOURS = {"helps": "#2166ac", "hurts": "#b2182b", "n.s.": "#7f7f7f"}


def gains_figure(significance_csv: str | Path, languages_csv: str | Path, out_paths: list[str | Path]) -> None:
    """Forest plot: per target, each intermediate task's gain with its interval (coloured by
    verdict) and its per-language gains (small grey marks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.read_csv(significance_csv)
    per_lang = pd.read_csv(languages_csv)
    targets = list(dict.fromkeys(table["target"]))
    itasks = list(dict.fromkeys(table["itask"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(3.4 * len(targets), 0.9 + 0.36 * len(itasks)),
                             sharey=True, squeeze=False)
    for ax, target in zip(axes[0], targets):
        rows = table[table["target"] == target].set_index("itask")
        for y, itask in enumerate(itasks):
            if itask not in rows.index:
                continue
            r = rows.loc[itask]
            langs = per_lang[(per_lang["target"] == target) & (per_lang["itask"] == itask)]
            ax.scatter(langs["gain"], [y + 0.22] * len(langs), s=7, color="#b0b0b0", zorder=1)
            ax.errorbar(r["gain"], y, xerr=[[r["gain"] - r["ci_low"]], [r["ci_high"] - r["gain"]]], fmt="o",
                        color=COLOURS[r["verdict"]], capsize=3, markersize=5, zorder=2)
        ax.axvline(0, color="black", linewidth=0.7)
        ax.set_title(_name(target), fontsize=10)
        ax.set_xlabel("gain over baseline (points)", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(range(len(itasks)), [_name(i) for i in itasks])
    axes[0][0].invert_yaxis()
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=v) for v, c in COLOURS.items()]
    handles.append(plt.Line2D([], [], marker="o", linestyle="", color="#b0b0b0", markersize=3, label="per language"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    for path in out_paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        metadata = {"CreationDate": None, "Producer": None} if Path(path).suffix == ".pdf" else {"Software": None}
        fig.savefig(path, dpi=150, metadata=metadata)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# The paper section


def macro_name(*parts: str) -> str:
    """A LaTeX command name (letters only) from keys such as ``squad_v1``: ``\\ReasonSquadVOne``."""
    return command_name("Reason", *parts)


def section(record: dict[str, Any], context: dict[str, Any]) -> tuple[str, str]:
    """(macros, body) of the generated reasoning section; every number is a macro."""
    boot = record["bootstrap"]
    macros: dict[str, str] = {}

    def m(value: str, *parts: str) -> str:
        name = macro_name(*parts)
        macros[name] = value
        return name + "{}"

    targets = record["targets"]
    by_target = {t: [c for c in record["comparisons"] if c["target"] == t] for t in targets}
    n_itasks = len(by_target[targets[0]])
    m(str(len(record["seeds"])), "seeds")
    m(str(boot["resamples"]), "resamples")
    m(str(round(100 * boot["confidence"])), "confidence")
    m(str(n_itasks), "itasks")
    for t in targets:
        m(str(len(record["languages"][t])), t, "languages")
        m(f"{by_target[t][0]['baseline']:.1f}", t, "baseline")
    helps = [c for t in targets for c in by_target[t] if c["verdict"] == "helps"]
    hurts = [c for t in targets for c in by_target[t] if c["verdict"] == "hurts"]
    m(str(n_itasks * len(targets)), "comparisons")
    m(str(len(helps)), "helps")
    m(str(len(hurts)), "hurts")

    def cite(c: dict[str, Any]) -> str:
        key = (c["target"], c["itask"])
        gain = m(_signed(c["gain"]), *key, "gain")
        low, high = m(_signed(c["low"]), *key, "low"), m(_signed(c["high"]), *key, "high")
        return f"{_tex(_name(c['itask']))} (${gain}$, CI $[{low}, {high}]$)"

    conf = macro_name("confidence") + "{}"
    lines = ["% Generated by rule make_reasoning_section from the significance record; do not edit.", ""]
    if context.get("synthetic"):
        lines += [r"\paragraph{Caveat: embedded demo.} These numbers come from the embedded demo: a synthetic "
                  r"benchmark (XCOPA-shaped data in " + ", ".join(record["languages"].get("xcopa", [])) +
                  r") and a tiny locally pretrained model trained for seconds per task. They show that the "
                  r"analysis runs and is computed correctly, not whether X-STILTs helps reasoning; run the "
                  r"\texttt{paper} preset for that.", ""]
    target_names = " and ".join(f"{_tex(_name(t))} ({macro_name(t, 'languages')}{{}} languages)" for t in targets)
    lines += [
        r"\paragraph{Question and protocol.} Does English intermediate-task training improve zero-shot "
        r"cross-lingual \emph{reasoning}? We answer on XTREME-R's reasoning targets, " + target_names +
        r", with XTREME-R's language lists and scorer. For each of the " + macro_name("itasks") +
        r"{} intermediate tasks and each target we report the gain over the baseline (mean over "
        + macro_name("seeds") + r"{} seed(s)), a " + conf + r"\% paired bootstrap interval over test "
        r"examples (seeds pooled, " + macro_name("resamples") + r"{} resamples, languages resampled "
        r"separately), and the number of languages improved and hurt "
        r"(Table~\ref{tab:reasoning-significance}, Figure~\ref{fig:reasoning-gains}). Intervals are per "
        r"comparison; with " + macro_name("comparisons") + r"{} comparisons, some "
        r"may exclude zero by chance.", "",
    ]
    if "xcopa" in targets:
        recipe = context.get("xcopa_recipe", "siqa_copa")
        if recipe == "siqa_copa":
            lines += [r"XCOPA is trained with XTREME-R's recipe, English Social IQa and then English COPA. "
                      r"SIQA is itself an English intermediate task, present in every row including the "
                      r"baseline (" + macro_name("xcopa", "baseline") + r"{}\%), so the XCOPA "
                      r"comparison measures a second intermediate task on top of SIQA.", ""]
        else:
            lines += [r"XCOPA is trained on English COPA alone (baseline " + macro_name("xcopa", "baseline")
                      + r"{}\%).", ""]
    answer = [r"\paragraph{Answer.} Of " + macro_name("comparisons") + r"{} intermediate task $\times$ "
              r"target comparisons, " + macro_name("helps") + r"{} are significant gains and "
              + macro_name("hurts") + r"{} significant losses."]
    for t in targets:
        good = [c for c in by_target[t] if c["verdict"] == "helps"]
        bad = [c for c in by_target[t] if c["verdict"] == "hurts"]
        sentence = f" On {_tex(_name(t))}, "
        sentence += ("significant gains come from " + ", ".join(cite(c) for c in good) if good
                     else "no intermediate task gives a significant gain")
        sentence += ("; significant losses from " + ", ".join(cite(c) for c in bad) + "." if bad else ".")
        answer.append(sentence)
        hurt_where = [(c, c["significantly_hurt_languages"]) for c in by_target[t] if c["significantly_hurt_languages"]]
        if hurt_where:
            answer.append(" Languages significantly hurt: " + "; ".join(
                f"{_tex(_name(c['itask']))}: {', '.join(langs)}" for c, langs in hurt_where) + ".")
    if "avg" in {c["target"] for c in record["comparisons"]}:
        avg = [c for c in record["comparisons"] if c["target"] == "avg"]
        good = [c for c in avg if c["verdict"] == "helps"]
        answer.append(" Averaged over the reasoning targets, " + (
            ", ".join(cite(c) for c in good) + (" improve" if len(good) > 1 else " improves") + " significantly."
            if good else "no intermediate task improves significantly."))
    verdict_line = ("So, on this run: yes, for the intermediate tasks named above."
                    if helps else "So, on this run: no intermediate task significantly improves reasoning.")
    answer.append(" " + verdict_line)
    lines += ["".join(answer), ""]
    macro_text = "% Generated by rule make_reasoning_section; numbers of the reasoning section.\n" + "".join(
        f"\\newcommand{{{name}}}{{{value}}}\n" for name, value in macros.items())
    return macro_text, "\n".join(lines)


def write_section(record: dict[str, Any], context: dict[str, Any], body_path: str | Path,
                  macros_path: str | Path) -> None:
    macros, body = section(record, context)
    for path, text in ((macros_path, macros), (body_path, body)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")


def finite(record: dict[str, Any]) -> bool:
    """Every number of the record is finite (a NaN would print as 'nan' in the paper)."""
    return all(math.isfinite(c[k]) for c in record["comparisons"] for k in ("gain", "low", "high", "baseline"))
