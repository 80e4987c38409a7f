"""A Django project (minimal settings, a view module) served through corral's WSGI and
ASGI fronts."""

import json

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="corral-test-" + "k" * 40,
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )
    django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

import corral  # noqa: E402
from http_client import request  # noqa: E402


def hello(request):
    return HttpResponse(f"hello {request.GET.get('q', '')}", content_type="text/plain")


def echo(request):
    return JsonResponse({"method": request.method, "len": len(request.body), "agent": request.headers.get("X-Agent")})


urlpatterns = [path("hello", hello), path("echo", echo)]




@pytest.mark.parametrize("front", ["wsgi", "asgi"])
def test_a_django_project(front):
    serve = corral.wsgi.serve if front == "wsgi" else corral.asgi.serve
    app = get_wsgi_application() if front == "wsgi" else get_asgi_application()
    with serve(app) as server:
        st, _, body = request(server.address, path="/hello?q=dj")
        assert (st, body) == (200, b"hello dj")
        st, _, body = request(server.address, "POST", "/echo", b"x" * 5000, {"X-Agent": "t"})
        assert st == 200 and json.loads(body) == {"method": "POST", "len": 5000, "agent": "t"}
        assert request(server.address, path="/missing")[0] == 404
