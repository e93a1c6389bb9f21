"""PNG plots of an evaluation: ROC curve, precision-recall curve, confusion matrix, training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.metrics import confusion, precision_recall_curve, roc_auc, roc_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_evaluation_plots(
    out_dir: Path,
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    *,
    title: str,
    history: dict[str, list[float]] | None = None,
) -> list[Path]:
    """Write roc.png, pr.png, confusion.png (and training.png when `history` is given); return their paths."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)

    fpr, tpr, _ = roc_curve(labels, probabilities)
    auc = roc_auc(labels, probabilities)
    figure, axes = plt.subplots(figsize=(4, 4), dpi=90)
    axes.plot(fpr, tpr, label=f"AUC {auc:.4f}" if auc is not None else "one class only")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC: {title}")
    axes.legend(loc="lower right")
    figure.tight_layout()
    written.append(out_dir / "roc.png")
    figure.savefig(written[-1])
    plt.close(figure)

    precision, recall = precision_recall_curve(labels, probabilities)
    figure, axes = plt.subplots(figsize=(4, 4), dpi=90)
    axes.plot(recall, precision)
    axes.set(xlabel="recall (fake)", ylabel="precision (fake)", title=f"Precision-recall: {title}", ylim=(0, 1.02))
    figure.tight_layout()
    written.append(out_dir / "pr.png")
    figure.savefig(written[-1])
    plt.close(figure)

    counts = confusion(labels, probabilities, threshold)
    matrix = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    figure, axes = plt.subplots(figsize=(3.6, 3.2), dpi=90)
    axes.imshow(matrix, cmap="Blues")
    for row in range(2):
        for column in range(2):
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center", fontsize=12)
    axes.set_xticks([0, 1], ["real", "fake"])
    axes.set_yticks([0, 1], ["real", "fake"])
    axes.set(xlabel="predicted", ylabel="true", title=f"Confusion at {threshold:.3f}")
    figure.tight_layout()
    written.append(out_dir / "confusion.png")
    figure.savefig(written[-1])
    plt.close(figure)

    if history:
        figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(7, 3), dpi=90)
        for key in ("loss", "val_loss"):
            if history.get(key):
                loss_axes.plot(range(1, len(history[key]) + 1), history[key], label=key)
        loss_axes.set(xlabel="epoch", title="loss")
        loss_axes.legend()
        for key in ("accuracy", "val_accuracy", "val_auc"):
            if history.get(key):
                score_axes.plot(range(1, len(history[key]) + 1), history[key], label=key)
        score_axes.set(xlabel="epoch", title="accuracy / AUC")
        score_axes.legend()
        figure.tight_layout()
        written.append(out_dir / "training.png")
        figure.savefig(written[-1])
        plt.close(figure)
    return written
