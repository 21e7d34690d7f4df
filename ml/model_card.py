"""Markdown model cards from the metrics dicts that training returns.

:func:`render_model_card` takes the recommender's metrics (``ml.recommender.train_recommender``)
and, optionally, the response model's (any dict: rendered generically as a table, nested
dicts flattened to dotted keys). Each model saves its card next to its files as
``model_card.md``. Pure string formatting: importing this module imports no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

RESPONSE_SECTION_TITLE = "## Promo response model"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flatten(values: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("metric", "value")) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_fmt(name)} | {_fmt(value)} |" for name, value in rows]
    return lines


def _recommender_section(m: dict) -> list[str]:
    lines = ["## Recommender (two-tower retrieval, TensorFlow Recommenders)", ""]
    train = m.get("training_window") or {}
    holdout = m.get("holdout_window") or {}
    lines += _table(
        [
            ("run date (data before)", m.get("as_of")),
            ("training window", f"{train.get('start', '?')} .. {train.get('end_exclusive', '?')} (exclusive)"),
            (
                "held-out window",
                f"{holdout['start']} .. {holdout['end_exclusive']} (exclusive)"
                if holdout
                else "none (trained on every day)",
            ),
            ("users in training pairs", m.get("n_users_train")),
            ("items in corpus", m.get("n_items")),
            ("items seen in training", m.get("n_items_seen_in_training")),
            ("training pairs (user, day, item)", m.get("n_training_pairs")),
            ("pairs in the window (the most recent kept past the cap)", m.get("n_training_pairs_available")),
            (
                "positive event weights",
                ", ".join(f"{k}={v:g}" for k, v in (m.get("positive_event_weights") or {}).items()),
            ),
            ("user features", m.get("user_numeric_columns")),
            ("item features", m.get("item_numeric_columns")),
        ],
        ("data", ""),
    )
    lines.append("")
    model, popularity = m.get("model") or {}, m.get("popularity") or {}
    if model:
        lines += [
            f"Offline evaluation: {_fmt(m.get('n_users_evaluated'))} users with at least one positive item on the held-out day "
            f"({_fmt(m.get('n_holdout_items_per_user'))} distinct items each on average). "
            f"Recall = {m.get('recall_definition', 'see ml.recommender')}; hit rate = share of users with any held-out item in the top-K.",
            "",
            "| metric | two-tower | popularity | two-tower - popularity | top-category popularity |",
            "|---|---|---|---|---|",
        ]
        category_popularity = m.get("category_popularity") or {}
        for name in sorted(
            model, key=lambda n: (n.split("_at_")[0], int(n.split("_at_")[1]) if n.split("_at_")[-1].isdigit() else 0)
        ):
            a, b = model.get(name), popularity.get(name)
            diff = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
            lines.append(
                f"| {name} | {_fmt(a)} | {_fmt(b)} | {'+' if diff is not None and diff >= 0 else ''}{_fmt(diff)} | {_fmt(category_popularity.get(name))} |"
            )
        factorized = [(k, v) for k, v in m.items() if k.startswith("factorized_top_k_at_")]
        if factorized:
            lines += [
                "",
                "tfrs FactorizedTopK over the whole corpus, per held-out (user, item) pair "
                f"({_fmt(m.get('n_holdout_pairs'))} pairs): " + ", ".join(f"{k} = {_fmt(v)}" for k, v in factorized),
            ]
        versus = m.get("versus_category_popularity") or {}
        if versus:
            lines += [
                "",
                "Two-tower - top-category popularity, paired over the same users (mean ± standard error): "
                + ", ".join(
                    f"recall@{k} {versus[f'recall_at_{k}_difference']:+.4f} ± {_fmt(versus.get(f'recall_at_{k}_difference_stderr'))}"
                    for k in (10, 50)
                    if f"recall_at_{k}_difference" in versus
                ),
            ]
    else:
        lines.append("No offline evaluation (no held-out day, or no positive interactions on it).")
    selection = m.get("selection") or {}
    if selection:
        lines += ["", f"**Featured items source: {_fmt(selection.get('source'))}** — {_fmt(selection.get('reason'))}."]
    lines.append("")
    lines += _table(
        [
            ("epochs", m.get("epochs")),
            ("batch size (global)", m.get("batch_size")),
            ("training examples/s", m.get("examples_per_second")),
            ("training seconds", m.get("train_seconds")),
            ("device", m.get("device")),
            ("strategy", f"{m.get('strategy')} x{m.get('replicas', 1)}" if m.get("strategy") else None),
            ("mixed precision", m.get("mixed_precision")),
            ("seed", m.get("seed")),
            ("deterministic ops", m.get("deterministic")),
            (
                "TensorFlow / TFRS",
                f"{m.get('tensorflow_version', '?')} / {m.get('tensorflow_recommenders_version', '?')}",
            ),
        ],
        ("training", ""),
    )
    return lines


def render_model_card(
    recommender_metrics: dict | None = None,
    response_metrics: dict | None = None,
    *,
    title: str = "promoflow model card",
    version: str | None = None,
) -> str:
    """Markdown card: the recommender section from its metrics dict, then the response
    model's section (a generic table of whatever ``response_metrics`` holds, or a
    placeholder). Either dict may be None."""
    lines = [f"# {title}" + (f" — {version}" if version else ""), ""]
    if recommender_metrics:
        lines += _recommender_section(recommender_metrics)
    else:
        lines += ["## Recommender", "", "Not trained in this version.", ""]
    lines += ["", RESPONSE_SECTION_TITLE, ""]
    # Hook for the response model's owner: anything in the dict is listed; a dedicated
    # renderer can replace this block without touching the recommender section.
    if response_metrics:
        lines += _table(_flatten(response_metrics))
    else:
        lines.append("Not part of this card (the response model writes its own metrics).")
    return "\n".join(lines).rstrip() + "\n"


def write_model_card(
    path, recommender_metrics: dict | None = None, response_metrics: dict | None = None, **kwargs: Any
):
    """Render and write the card to ``path`` (a file, conventionally ``model_card.md``)."""
    from pathlib import Path

    path = Path(path)
    path.write_text(render_model_card(recommender_metrics, response_metrics, **kwargs))
    return path
