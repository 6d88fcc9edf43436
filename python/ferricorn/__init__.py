"""ferricorn: a gunicorn-compatible WSGI pre-fork server written in Rust.

This package is the launcher of the server binary the wheel installs; run
`ferricorn --help` or `python -m ferricorn --help`.
"""
