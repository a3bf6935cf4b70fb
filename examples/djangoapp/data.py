"""Create and seed the example's SQLite database once, whichever process gets there first.

Every server process imports the app, and several may do so at the same moment (two workers, or a master
and its workers): the first takes an exclusive lock on a file beside the database, creates the tables and
rows if they are missing, and the others find them there. No ``migrate`` step: the example starts with one
command, like the sample apps.
"""

from __future__ import annotations

import fcntl
import random
import threading
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from examples.djangoapp.models import Fortune, World

WORLD_ROWS = 10_000
MAX_RANDOM_NUMBER = 10_000
SEED = 22  # the rows are the same in every database this creates
# TechEmpower's fortunes: markup to escape, non-ASCII text, a quote, and one row added at request time.
FORTUNES = [
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    '<script>alert("This should not be displayed in a browser alert box.");</script>',
    "フレームワークのベンチマーク",
]


def ensure() -> None:
    """Create the tables and rows unless a complete database is there; leaves no connection open (a preloading
    master must not hand one to the workers it forks).

    In a thread of its own: some ASGI servers import the app inside their running event loop, where Django
    refuses a synchronous query, and Django's connections are per thread, so this one is closed with it."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            _ensure()
        except BaseException as exc:  # re-raised in the importing thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="djangoapp-ensure")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _ensure() -> None:
    path = Path(settings.DATABASES["default"]["NAME"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _complete():
                _create()
        finally:
            connection.close()


def _complete() -> bool:
    tables = set(connection.introspection.table_names())
    return {"world", "fortune"} <= tables and World.objects.count() == WORLD_ROWS and Fortune.objects.exists()


def _create() -> None:
    rng = random.Random(SEED)
    with connection.schema_editor() as editor:  # its own transaction (SQLite's rule for schema changes)
        for model in (World, Fortune):
            if model._meta.db_table in connection.introspection.table_names():
                editor.delete_model(model)
            editor.create_model(model)
    with transaction.atomic():
        World.objects.bulk_create(World(id=i, randomNumber=rng.randint(1, MAX_RANDOM_NUMBER))
                                  for i in range(1, WORLD_ROWS + 1))
        Fortune.objects.bulk_create(Fortune(id=i, message=m) for i, m in enumerate(FORTUNES, 1))
