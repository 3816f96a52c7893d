"""``python -m explorer`` is a pointer to the real entry points."""

print("Use: streamlit run app.py | python -m explorer.train --help | python -m explorer.evaluate --help")
