import os

workers = 2
timeout = 30
bind = [f"0.0.0.0:{PORT}"]
