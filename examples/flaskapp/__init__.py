# Makes flaskapp a package so the app can also be served from the parent
# directory: `ferricorn --chdir examples flaskapp.app:app`.
