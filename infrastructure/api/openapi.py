"""The OpenAPI 3.1 document, generated from the route declarations (``routes.Route``) and their pydantic models,
served at ``GET /v1/openapi.json``, and a plain HTML rendering of it at ``GET /v1/docs`` (server-side, no script,
no CDN: it works offline and under a strict Content-Security-Policy).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from execledger.infrastructure.api.jsonio import MAX_BODY_BYTES, MAX_DEPTH, json_response
from execledger.infrastructure.api.models import ErrorBody
from execledger.infrastructure.api.routes import Route

REF = "#/components/schemas/{model}"
DESCRIPTION = (
    "Reports from the read models; approved trade signals in. JSON only: requests with a body must send "
    f"`Content-Type: application/json` (at most {MAX_BODY_BYTES} bytes, nested at most {MAX_DEPTH} deep). "
    "Decimals are strings in plain notation. Every error has the shape `ErrorBody`; `errors` names each field."
)


def _guard_answers(route: Route) -> dict[int, str]:
    """The answers the guard middleware may give on any route (guard.py), documented on each operation."""
    answers = {403: "cross-origin browser request refused", 421: "Host is not this API's loopback name and port"}
    if not route.public:
        answers[401] = "missing or wrong bearer token (when EXECLEDGER_API_TOKEN is set)"
    if route.query or route.path_params or route.body or route.method not in ("GET", "HEAD"):
        answers[400] = "a parameter or the body is malformed (the field is named)"
    if route.method not in ("GET", "HEAD"):
        answers[413] = f"body larger than {MAX_BODY_BYTES} bytes"
        answers[415] = "body is not application/json"
    return answers


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` -> X: a query or path parameter is absent, never null."""
    options = schema.get("anyOf")
    if options:
        rest = [s for s in options if s.get("type") != "null"]
        if len(rest) == 1:
            return {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")}, **rest[0]}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


def _parameters(where: str, model: type[BaseModel], components: dict, exclude: Iterable[str] = ()) -> list[dict]:
    schema = components[model.__name__ + ("-Input" if model.__name__ + "-Input" in components else "")]
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": _strip_null(prop),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
        if name not in exclude
    ]


def build_document(routes: Sequence[Route], *, version: str = "1") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of ``routes``."""
    inputs = {m for r in routes for m in (r.query, r.path_params, r.body) if m is not None}
    outputs = {m for r in routes for _desc, m in r.responses.values() if m is not None} | {ErrorBody}
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in inputs]
    pairs += [(m, "serialization") for m in outputs]
    refs, top = models_json_schema(pairs, ref_template=REF)
    components = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        responses: dict[str, Any] = {}
        for status, (description, model) in sorted(route.responses.items()):
            answer: dict[str, Any] = {"description": description}
            if route.html and status < 300:
                answer["content"] = {"text/html": {"schema": {"type": "string"}}}
            elif model is not None:
                answer["content"] = {"application/json": {"schema": refs[(model, "serialization")]}}
            responses[str(status)] = answer
        for status, description in _guard_answers(route).items():
            responses.setdefault(
                str(status),
                {
                    "description": description,
                    "content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}},
                },
            )
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "responses": dict(sorted(responses.items())),
        }
        if route.tags:
            operation["tags"] = list(route.tags)
        if route.public:
            operation["security"] = []
        parameters = []
        if route.path_params is not None:
            parameters += _parameters("path", route.path_params, components)
        if route.query is not None:
            parameters += _parameters("query", route.query, components, route.query_exclude)
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "execledger", "version": version, "description": DESCRIPTION},
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


def render_html(doc: dict[str, Any]) -> str:
    """The document as one HTML page: every operation with its parameters, body and answers, then the schemas."""
    e = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>execledger API</title><style>"
        "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em}"
        "code,pre{font:12px ui-monospace,monospace}pre{background:#f5f5f5;padding:.6em;overflow:auto}"
        "h2{border-top:1px solid #ccc;padding-top:.6em}.m{font-weight:bold;text-transform:uppercase}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}"
        "</style></head><body>",
        f"<h1>{e(doc['info']['title'])} API v{e(doc['info']['version'])}</h1><p>{e(doc['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/v1/openapi.json'>/v1/openapi.json</a> (OpenAPI 3.1).</p>",
    ]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            auth = "no token needed" if op.get("security") == [] else "bearer token when configured"
            out.append(f"<h2><span class='m'>{e(method)}</span> <code>{e(path)}</code></h2>")
            out.append(f"<p>{e(op.get('summary', ''))} <em>({auth})</em></p>")
            if op.get("parameters"):
                out.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th></tr>")
                for p in op["parameters"]:
                    out.append(
                        f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td><td>{p['required']}</td>"
                        f"<td><code>{e(json.dumps(p['schema']))}</code></td></tr>"
                    )
                out.append("</table>")
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                out.append(f"<p>Body (application/json): {_link(schema)}</p>")
            out.append("<ul>")
            for status, answer in op["responses"].items():
                content: dict[str, dict[str, Any]] = answer.get("content", {})
                schema = next(iter(content.values()), {}).get("schema")
                out.append(f"<li><b>{e(status)}</b> {e(answer['description'])} {_link(schema) if schema else ''}</li>")
            out.append("</ul>")
    out.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        out.append(f"<h3 id='{e(name)}'>{e(name)}</h3><pre>{e(json.dumps(schema, indent=2))}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def _link(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        return f"<a href='#{html.escape(name)}'><code>{html.escape(name)}</code></a>"
    return f"<code>{html.escape(json.dumps(schema))}</code>"


DOCUMENT = web.AppKey("openapi_document", dict)
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


async def serve(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return json_response(request.app[DOCUMENT])


async def docs(request: web.Request) -> web.Response:
    """This API's documentation as HTML (rendered from the same document)."""
    response = web.Response(text=render_html(request.app[DOCUMENT]), content_type="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
