"""A module the hot-reload app imports at start (copied as helper.py)."""
VALUE = "h1"
