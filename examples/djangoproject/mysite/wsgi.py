"""WSGI entry point: `ferricorn --chdir examples/djangoproject mysite.wsgi`.

The server looks up the module's `application` attribute when none is named.
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
