"""The example's WSGI entry point: ``--app examples.djangoapp.wsgi:application``."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.djangoapp.settings")

from django.core.wsgi import get_wsgi_application  # after the settings module is named

application = get_wsgi_application()  # calls django.setup()

from examples.djangoapp import data  # noqa: E402 - the models need the app registry ready

data.ensure()
