"""The 'Try a sample' control every domain page shows, with the chosen sample clearly marked as one."""

from __future__ import annotations

import streamlit as st

from medui.samples import Sample, get_sample, samples_for


def sample_picker(page: str) -> tuple[Sample, bytes] | None:
    """Offer this page's samples; returns the chosen one and its bytes, kept across reruns until cleared."""
    offered = samples_for(page)
    if not offered:
        return None
    state_key = f"medui_sample_{page}"
    with st.expander("No files at hand? Try a sample"):
        for sample in offered:
            if st.button(f"Load sample: {sample.title}", key=f"{state_key}_{sample.key}", help=sample.description):
                st.session_state[state_key] = sample.key
        if st.session_state.get(state_key) and st.button("Clear sample", key=f"{state_key}_clear"):
            del st.session_state[state_key]
    chosen = st.session_state.get(state_key)
    if not chosen:
        return None
    sample = get_sample(page, chosen)
    st.info(f"**Sample input**: {sample.title} ({sample.origin}). Not a real patient of yours.")
    return sample, sample.load()
