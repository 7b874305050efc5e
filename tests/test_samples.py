import pytest
from streamlit.testing.v1 import AppTest

from medui import samples


@pytest.fixture
def demo_sample(monkeypatch):
    monkeypatch.setattr(samples, "_SAMPLES", {})
    return samples.register(samples.Sample(page="demo", key="note", title="Discharge summary",
                                           description="A short synthetic note", filename="note.txt",
                                           origin="synthetic, written by MedUI", load=lambda: b"Denies chest pain."))


def test_samples_are_listed_per_page_and_unique(demo_sample):
    assert samples.samples_for("demo") == [demo_sample]
    assert samples.samples_for("imaging") == []
    with pytest.raises(ValueError, match="registered twice"):
        samples.register(demo_sample)
    with pytest.raises(ValueError, match="available: note"):
        samples.get_sample("demo", "missing")


def picker_page():
    import streamlit as st

    from medui.ui.samples import sample_picker

    chosen = sample_picker("demo")
    st.write(f"got {chosen[1].decode()}" if chosen else "nothing chosen")


def test_picker_loads_and_marks_the_sample(demo_sample):
    at = AppTest.from_function(picker_page).run()
    assert at.markdown[-1].value == "nothing chosen"
    at.button[0].click().run()
    assert at.markdown[-1].value == "got Denies chest pain."
    assert "Sample input" in at.info[0].value and "synthetic" in at.info[0].value
    at.button(key="medui_sample_demo_clear").click().run()
    assert at.markdown[-1].value == "nothing chosen"
