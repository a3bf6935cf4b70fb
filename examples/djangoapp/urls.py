from __future__ import annotations

from django.urls import path

from examples.djangoapp import views

urlpatterns = [
    path("health", views.health),
    path("fortunes", views.fortunes),
    path("api/worlds/<int:world_id>", views.world),
    path("api/queries", views.queries),
]
