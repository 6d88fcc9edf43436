from django.conf import settings
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    # django.conf.urls.static.static() adds nothing when DEBUG is off, so the
    # serve view is routed explicitly, from the project's static/ directory:
    # no collectstatic step, no extra package. Fine for an example; a real
    # deployment lets a web server or whitenoise serve static files.
    re_path(
        r"^static/(?P<path>.*)$",
        serve,
        {"document_root": settings.BASE_DIR / "static"},
    ),
    path("", include("pages.urls")),
]
