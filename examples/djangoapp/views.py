"""The example's views: plain Django (function views, the ORM, a template, JsonResponse)."""

from __future__ import annotations

import json
import random

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from examples.djangoapp.data import MAX_RANDOM_NUMBER, WORLD_ROWS
from examples.djangoapp.models import Fortune, World

MAX_QUERIES = 500


@require_GET
def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")


@require_GET
def fortunes(request: HttpRequest) -> HttpResponse:
    rows = list(Fortune.objects.all())
    rows.append(Fortune(id=0, message="Additional fortune added at request time."))
    rows.sort(key=lambda f: f.message)
    return render(request, "fortunes.html", {"fortunes": rows})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def world(request: HttpRequest, world_id: int) -> HttpResponse:
    row = get_object_or_404(World, pk=world_id)
    if request.method == "POST":
        try:
            number = json.loads(request.body)["randomNumber"]
        except (ValueError, KeyError, TypeError):
            return HttpResponseBadRequest("expected a JSON object with randomNumber",
                                          content_type="text/plain; charset=utf-8")
        if not isinstance(number, int) or not 1 <= number <= MAX_RANDOM_NUMBER:
            return HttpResponseBadRequest(f"randomNumber must be an integer from 1 to {MAX_RANDOM_NUMBER}",
                                          content_type="text/plain; charset=utf-8")
        row.randomNumber = number
        row.save(update_fields=["randomNumber"])
    return JsonResponse(row.as_dict())


@require_GET
def queries(request: HttpRequest) -> HttpResponse:
    try:
        n = int(request.GET.get("n", "1"))
    except ValueError:
        n = 1
    n = max(1, min(MAX_QUERIES, n))
    rows = [World.objects.get(pk=random.randint(1, WORLD_ROWS)).as_dict() for _ in range(n)]
    return JsonResponse(rows, safe=False)
