"""A small Django project to benchmark as "your own app", served natively under both interfaces.

``--app examples.djangoapp.wsgi:application --asgi-app examples.djangoapp.asgi:application`` with
``--scenario-file examples/djangoapp.toml``: every WSGI mode serves Django's WSGI handler and every ASGI mode
its ASGI handler, the same project, no adapter. In the spirit of TechEmpower's Django tests:

| request | what it does |
| --- | --- |
| ``GET /fortunes`` | every fortune through the ORM from SQLite, one added, sorted, rendered by a Django template |
| ``GET /api/worlds/<id>`` | one row by primary key, as JSON |
| ``GET /api/queries?n=N`` | N rows by random primary key (1-500), as a JSON list |
| ``POST /api/worlds/<id>`` | the write: sets the row's ``randomNumber`` from a JSON body, answers the row |
| ``GET /health`` | ``ok``, without the database |

The database is a SQLite file (``DJANGOAPP_DB``, default ``workerbench-djangoapp.sqlite3`` in the temporary
folder), created and seeded on first import (:mod:`examples.djangoapp.data`).
"""
