"""Streamlit pieces of the Training admin page: dataset preview, live curves, evaluation report, comparison."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from medui.training import monitor


def show_preview(result: monitor.Preview) -> None:
    """The dataset check: the refusal first (in words), then counts per label and split, then rejected rows."""
    if result.error:
        st.error(f"This dataset cannot be used: {result.error}")
    report = result.report
    if report:
        st.caption(f"{report['accepted']} of {report['rows']} rows usable · sha256 {report['sha256'][:12]}…")
        st.dataframe(pd.DataFrame(monitor.label_table(report)), hide_index=True)
        st.dataframe(pd.DataFrame([report["sizes"]]), hide_index=True)
    if result.rejected:
        st.warning(f"{len(result.rejected)} rejected rows")
        st.dataframe(pd.DataFrame(result.rejected), hide_index=True)


def show_curves(rows: list[dict[str, Any]]) -> None:
    """Loss curves (training and validation) and the validation metrics, as plotly lines."""
    series = monitor.curves(rows)
    if not series:
        st.info("No metrics yet: the first line appears after the first logged step.")
        return
    losses = {k: v for k, v in series.items() if k in ("train_loss", "eval_loss")}
    others = {k: v for k, v in series.items() if k.startswith("eval_") and k != "eval_loss"}
    for title, group in (("Loss", losses), ("Validation metrics", others)):
        if not group:
            continue
        fig = go.Figure([go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers",
                                    name=name) for name, points in group.items()])
        fig.update_layout(title=title, xaxis_title="step", height=320, margin={"t": 40, "b": 30})
        st.plotly_chart(fig)


def show_report(task: str, metrics: dict[str, Any], trainable: int | None, total: int | None) -> None:
    """The test-split evaluation registered with the version."""
    headline = [m for m in monitor.HEADLINE.get(task, ()) if isinstance(metrics.get(m), (int, float))]
    for col, name in zip(st.columns(max(1, len(headline))), headline):
        col.metric(name, f"{metrics[name]:.3f}")
    if trainable and total:
        st.caption(f"Parameters: {trainable:,} trainable of {total:,} ({100 * trainable / total:.2f}%) · "
                   f"{metrics.get('n', '?')} test examples")
    per = metrics.get("per_class") or metrics.get("per_label")
    if per:
        st.dataframe(pd.DataFrame([{"label": k, **v} for k, v in per.items()]), hide_index=True)
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("confusion_labels")
    if matrix and labels:
        st.caption("Confusion matrix (rows: true, columns: predicted)")
        st.dataframe(pd.DataFrame(matrix, index=[f"true {x}" for x in labels], columns=labels))


def show_comparison(task: str, candidate: Any, production: Any) -> None:
    rows = monitor.comparison(task, candidate.metrics, production.metrics)
    st.subheader(f"Candidate v{candidate.version} vs production v{production.version}")
    st.caption("Registered metrics: each version measured on its own job's test split.")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.info(f"Production v{production.version} has no metrics to compare with.")


def show_same_split(result: dict[str, Any]) -> None:
    """Both versions scored on the candidate job's test split (`medui.training.compare`)."""
    if not result["comparable"]:
        st.warning(f"Production v{result['production_version']} cannot be compared on this test split: "
                   f"{result['reason']}")
        return
    st.markdown(f"**Same test split**: {result['n']} examples of this job's test split, both versions run on them")
    left_out = result.get("left_out_labels")
    if left_out:
        st.caption(f"Scored on the shared labels {', '.join(result['labels'])} only; left out: {', '.join(left_out)}")
    st.dataframe(pd.DataFrame(monitor.comparison(result["task"], result["candidate"], result["production"])),
                 hide_index=True)
