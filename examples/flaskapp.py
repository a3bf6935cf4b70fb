"""A small Flask app to benchmark as "your own app": ``--app examples.flaskapp:app``.

What a typical small service does per request: route, render a template, serialise JSON, read a JSON body.
Its items live in memory, so the figures show the framework and the server, not a database. ``ITEMS_GREETING``
(set with ``--env ITEMS_GREETING=...``) shows how settings reach the app.
"""

from __future__ import annotations

import os

from flask import Flask, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)

ITEMS: dict[int, dict[str, object]] = {
    i: {"id": i, "name": name, "price": price}
    for i, (name, price) in enumerate([("pen", 1.5), ("notebook", 4.0), ("stapler", 9.9), ("ruler", 2.25)], 1)
}

PAGE = """<!doctype html>
<title>items</title>
<h1>{{ greeting }}</h1>
<ul>{% for item in items %}<li><a href="/api/items/{{ item.id }}">{{ item.name }}</a>: {{ item.price }}</li>
{% endfor %}</ul>
"""
TEMPLATE = app.jinja_env.from_string(PAGE)  # compiled once, as a template file would be


@app.get("/")
def home() -> ResponseReturnValue:
    greeting = os.environ.get("ITEMS_GREETING", "Items")
    return render_template(TEMPLATE, greeting=greeting, items=list(ITEMS.values()))


@app.get("/health")
def health() -> ResponseReturnValue:
    return "ok"


@app.get("/api/items")
def items() -> ResponseReturnValue:
    limit = request.args.get("limit", default=len(ITEMS), type=int)
    return jsonify(items=list(ITEMS.values())[:limit])


@app.get("/api/items/<int:item_id>")
def item(item_id: int) -> ResponseReturnValue:
    if item_id not in ITEMS:
        abort(404)
    return jsonify(ITEMS[item_id])


@app.post("/api/items")
def create() -> ResponseReturnValue:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return jsonify(error="expected a JSON object with a name"), 400
    # Echo only: the store stays the same size however long the benchmark runs.
    return jsonify(id=len(ITEMS) + 1, name=data["name"], price=data.get("price", 0)), 201
