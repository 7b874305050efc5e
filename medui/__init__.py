"""MedUI: a clinician-facing workbench for medical AI. Nothing in this package imports Streamlit outside `medui.ui`."""

import os

# Weights and data never come from a hub at run time: offline is the default, not an option.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

__version__ = "0.1.0"
