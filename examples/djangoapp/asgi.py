"""The example's ASGI entry point: ``--asgi-app examples.djangoapp.asgi:application``.

Django's own ASGI handler, not an adapter: its sync views run in a thread (asgiref's ``sync_to_async``), one
per process for the database work (``thread_sensitive``), beside the server's event loop.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.djangoapp.settings")

from django.core.asgi import get_asgi_application  # after the settings module is named

application = get_asgi_application()  # calls django.setup()

from examples.djangoapp import data  # noqa: E402 - the models need the app registry ready

data.ensure()
