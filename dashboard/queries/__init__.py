"""Read-only queries behind the dashboard's pages: plain functions over a session factory,
returning small frames or dataclasses, so they are tested without Streamlit."""
