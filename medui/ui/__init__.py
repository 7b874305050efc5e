"""The only part of `medui` that imports Streamlit: shared page guard, sidebar, cached loaders and widgets."""
