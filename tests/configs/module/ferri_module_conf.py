# Loaded with -c python:ferri_module_conf
workers = 6
bind = ["unix:/tmp/ferri-module.sock"]
