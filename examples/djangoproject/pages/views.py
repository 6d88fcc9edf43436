import hashlib
import os

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST


@require_GET
def index(request):
    return render(
        request,
        "pages/index.html",
        {"server": request.META.get("SERVER_SOFTWARE", "unknown"), "pid": os.getpid()},
    )


@require_http_methods(["GET", "POST"])
def form(request):
    # CsrfViewMiddleware has already rejected a POST without a matching cookie
    # and token (403) by the time we get here.
    if request.method == "POST":
        message = request.POST.get("message", "")
        return HttpResponse(f"message: {message}\n", content_type="text/plain")
    return render(request, "pages/form.html")


# An API-style endpoint, posted to by scripts and load generators that have no
# CSRF cookie to send; /form/ is the one that shows Django's CSRF protection.
@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES.get("file")
    if f is None:
        return JsonResponse({"error": "expected a multipart field named 'file'"}, status=400)
    digest = hashlib.sha256()
    size = 0
    # Large uploads are spooled to a temporary file; read them in chunks.
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"filename": f.name, "size": size, "sha256": digest.hexdigest()})


@require_GET
def stream(request):
    def generate():
        for n in range(10):
            yield f"chunk {n}\n"

    return StreamingHttpResponse(generate(), content_type="text/plain")


@require_GET
def error(request):
    raise RuntimeError("intentional error from /error/")
