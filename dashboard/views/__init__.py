"""The dashboard's pages: scripts Streamlit runs (each renders itself on import)."""
