"""Settings for the example Django project.

Production-like on purpose (DEBUG off, CSRF on) so a server is exercised the
way real deployments use it, yet with no database: nothing to set up or start.
"""
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Development key only. It has to be fixed rather than generated at start-up:
# every worker process must sign and verify the same session and CSRF data.
SECRET_KEY = "ferricorn-example-dev-key-not-secret-0123456789abcdefghijklmnop"

DEBUG = False

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.sessions",
    "pages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
            ],
        },
    },
]

WSGI_APPLICATION = "mysite.wsgi.application"

# No database at all: the views don't need one, and sessions live in signed
# cookies instead of a table.
DATABASES = {}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# With DEBUG off Django would only mail tracebacks to ADMINS (there are none),
# so an error in a view would leave no trace. Send them to stderr, which the
# server collects in its error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "stderr": {"class": "logging.StreamHandler"},
    },
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING"},
    },
}
