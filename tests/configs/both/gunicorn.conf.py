wsgi_app = "py:app"
workers = 2
