"""Figures (matplotlib), drawn from the generated tables only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xstilts.tasks import DISPLAY_NAMES


def delta_heatmap(delta_csv: str | Path, out_paths: list[str | Path], style: str | Path | None = None) -> None:
    """Heatmap of the encoder x target deltas (points over the baseline), annotated.

    A diverging colour map centred on zero: gains blue, losses red. The baseline row (all
    zeros) is omitted. Files carry no timestamps, so identical tables give identical bytes.
    ``style``: a matplotlib style sheet (paper/figures.mplstyle).
    """
    with _style(style):
        _delta_heatmap(delta_csv, out_paths)


def _delta_heatmap(delta_csv: str | Path, out_paths: list[str | Path]) -> None:
    import matplotlib.pyplot as plt

    df = pd.read_csv(delta_csv, index_col=0)
    df = df[[c for c in df.columns if not c.endswith("_sd")]]
    df = df[(df != 0).any(axis=1)]
    limit = max(1e-9, float(df.abs().max().max()))
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * df.shape[1], 0.9 + 0.42 * df.shape[0]))
    image = ax.imshow(df.values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(df.shape[1]), [DISPLAY_NAMES.get(c, "Avg" if c == "avg" else c) for c in df.columns],
                  rotation=45, ha="right")
    ax.set_yticks(range(df.shape[0]), [DISPLAY_NAMES.get(i, i) for i in df.index])
    for i in range(df.shape[0]):
        for j in range(df.shape[1]):
            value = df.iat[i, j]
            ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(value) > 0.6 * limit else "black")
    fig.colorbar(image, ax=ax, label="points over baseline")
    ax.set_title("Gain from intermediate-task training")
    fig.tight_layout()
    _save(fig, out_paths)
    plt.close(fig)


def language_gains(per_target_csvs: dict[str, str | Path], best: dict[str, str], baseline: str,
                   out_paths: list[str | Path], style: str | Path | None = None) -> None:
    """Per-language change over the baseline of each target's best intermediate task.

    One panel per target (languages in the scorer's order, the average last), bars coloured
    by sign; drawn from the per-target tables only.
    """
    with _style(style):
        _language_gains(per_target_csvs, best, baseline, out_paths)


def _language_gains(per_target_csvs: dict[str, str | Path], best: dict[str, str], baseline: str,
                    out_paths: list[str | Path]) -> None:
    import matplotlib.pyplot as plt

    targets = [t for t in per_target_csvs if t in best]
    cols = min(3, max(1, len(targets)))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax, target in zip(axes.ravel(), targets):
        df = pd.read_csv(per_target_csvs[target], index_col=0)
        df = df[[c for c in df.columns if not c.endswith("_sd")]]
        gain = df.loc[best[target]] - df.loc[baseline]
        ax.bar(range(len(gain)), gain.values, color=["#2166ac" if g >= 0 else "#b2182b" for g in gain.values])
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(gain)), ["Avg" if c == "avg" else c for c in gain.index], fontsize=7, rotation=90)
        ax.set_title(f"{DISPLAY_NAMES.get(target, target)}: {DISPLAY_NAMES.get(best[target], best[target])}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(targets):]:
        ax.axis("off")
    fig.supylabel("points over baseline", fontsize=9)
    fig.tight_layout()
    _save(fig, out_paths)
    plt.close(fig)


def _style(style: str | Path | None):
    """A context with matplotlib's Agg backend and the given style sheet (or the defaults)."""
    import contextlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.style.context(str(style)) if style else contextlib.nullcontext()


def _save(fig, out_paths: list[str | Path]) -> None:
    for path in out_paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        metadata = {"CreationDate": None, "Producer": None} if Path(path).suffix == ".pdf" else {"Software": None}
        fig.savefig(path, metadata=metadata)
