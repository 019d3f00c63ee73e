"""The OpenAPI 3.1 document of the HTTP API, served at GET /v1/openapi.json."""

from __future__ import annotations

from aiohttp import web

from execledger.infrastructure.api.jsonio import json_response

_FILTERS = [
    {"name": n, "in": "query", "required": False, "schema": s}
    for n, s in [
        ("signal_id", {"type": "string"}),
        ("pair", {"type": "string", "example": "XBT/USD"}),
        (
            "status",
            {
                "type": "string",
                "enum": [
                    "pending_submit",
                    "submitting",
                    "outcome_unknown",
                    "open",
                    "partially_filled",
                    "cancel_pending",
                    "filled",
                    "canceled",
                    "expired",
                    "rejected",
                ],
            },
        ),
        ("since", {"type": "string", "format": "date-time"}),
        ("until", {"type": "string", "format": "date-time"}),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        ("offset", {"type": "integer", "minimum": 0, "default": 0}),
    ]
]
_PAGE = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"type": "object"}},
        "total": {"type": "integer"},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "next_offset": {"type": ["integer", "null"]},
    },
}
_ERR = {"type": "object", "properties": {"error": {"type": "string"}, "errors": {"type": "array"}}}
_SIGNAL = {
    "type": "object",
    "required": ["signal_id", "pair", "side", "order_type", "quantity"],
    "additionalProperties": False,
    "properties": {
        "signal_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$"},
        "pair": {"type": "string", "example": "XBT/USD"},
        "side": {"enum": ["buy", "sell"]},
        "order_type": {"enum": ["market", "limit"]},
        "quantity": {"type": "string", "example": "0.01"},
        "limit_price": {"type": "string"},
        "sl_price": {"type": "string"},
        "tp_price": {"type": "string"},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _resp(desc: str, schema: dict | None = None) -> dict:
    return {"description": desc, **({"content": {"application/json": {"schema": schema}}} if schema else {})}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "execledger", "version": "1", "description": "Reports from the read models; signals in."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/signals": {
            "post": {
                "summary": "Submit an approved trade signal (idempotent by signal_id)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _SIGNAL}}},
                "responses": {
                    "201": _resp("order created"),
                    "200": _resp("the same signal again: nothing written"),
                    "400": _resp("body is not JSON", _ERR),
                    "409": _resp("signal_id reused with other content", _ERR),
                    "422": _resp("invalid signal, one error per field", _ERR),
                    "423": _resp("trading halted", _ERR),
                },
            }
        },
        "/v1/orders": {
            "get": {
                "summary": "List orders",
                "parameters": _FILTERS,
                "responses": {"200": _resp("a page", _PAGE), "400": _resp("invalid query", _ERR)},
            }
        },
        "/v1/orders/{order_id}": {
            "get": {
                "summary": "One order: projected state and full event history",
                "parameters": [
                    {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
                ],
                "responses": {
                    "200": _resp("the order"),
                    "400": _resp("not a UUID", _ERR),
                    "404": _resp("no such order", _ERR),
                },
            }
        },
        "/v1/execution-reports": {
            "get": {
                "summary": "List execution reports",
                "parameters": _FILTERS,
                "responses": {"200": _resp("a page", _PAGE), "400": _resp("invalid query", _ERR)},
            }
        },
        "/v1/fills": {
            "get": {
                "summary": "List fills",
                "parameters": [p for p in _FILTERS if p["name"] != "status"],
                "responses": {"200": _resp("a page", _PAGE), "400": _resp("invalid query", _ERR)},
            }
        },
        "/v1/health": {
            "get": {
                "summary": "Liveness, projection lag and trading mode",
                "security": [],
                "responses": {"200": _resp("ok")},
            }
        },
        "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": _resp("OpenAPI 3.1")}}},
    },
}


async def serve(request: web.Request) -> web.Response:
    return json_response(OPENAPI)
