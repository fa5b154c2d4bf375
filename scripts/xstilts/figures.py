"""Figures (matplotlib), drawn from the generated tables only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xstilts.tasks import DISPLAY_NAMES


def delta_heatmap(delta_csv: str | Path, out_paths: list[str | Path]) -> None:
    """Heatmap of the encoder x target deltas (points over the baseline), annotated.

    A diverging colour map centred on zero: gains blue, losses red. The baseline row (all
    zeros) is omitted. Files carry no timestamps, so identical tables give identical bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
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
    for path in out_paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        suffix = Path(path).suffix
        metadata = {"CreationDate": None, "Producer": None} if suffix == ".pdf" else {"Software": None}
        fig.savefig(path, dpi=150, metadata=metadata)
    plt.close(fig)
