"""The Streamlit chat, shipped inside the distribution so that an installed `rag ui` finds it.

`app.py` is the script that `streamlit run` executes (its helpers `build_job.py` and `chat_html.py` are
imported from beside it, as Streamlit puts the script's folder on the path); `.streamlit/config.toml` holds its
server settings. Nothing here imports Streamlit: `rag ui` only looks the script up with importlib.resources."""
