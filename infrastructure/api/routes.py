"""How a route is declared: once, with its models. ``app.create_api`` mounts every declared route behind the guard
middleware and ``openapi.build_document`` describes the same list, so a route cannot exist undocumented.

A module of routes exports ``ROUTES: list[Route]`` and is listed in ``app.ROUTE_MODULES``. Example::

    ROUTES = [
        Route("POST", "/v1/orders/{order_id}/cancel", cancel_order, "Ask for an order to be canceled",
              path=OrderPath, body=CancelRequest, responses={202: ("cancel recorded", CancelAccepted)}),
    ]

The guard gives every route its Host/Origin checks, the bearer token (unless ``public``), JSON-only bodies with
size and nesting limits, and the one error shape; the document adds those answers (400/401/403/413/415/421) to
each operation by itself. A handler reads its parsed body with ``jsonio.body_of(request)``; a route that sets
``validate=True`` gets its body validated against ``body`` first (422 with one error per field) and finds the
model instance under ``request[VALID_BODY]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = tuple[str, type[BaseModel] | None]  # description, body model (None: no body documented)

VALID_BODY = web.RequestKey("valid_body", BaseModel)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    responses: Mapping[int, Answer] = field(default_factory=dict)
    query: type[BaseModel] | None = None  # query parameters, one per field (unknown ones are the model's call)
    query_exclude: tuple[str, ...] = ()  # fields of ``query`` this route does not take
    path_params: type[BaseModel] | None = None
    body: type[BaseModel] | None = None  # the JSON request body
    validate: bool = False  # validate the body against ``body`` before the handler runs
    public: bool = False  # no bearer token needed (health, the API's own description)
    html: bool = False  # answers text/html instead of JSON
    tags: tuple[str, ...] = ()
    console: bool = False  # the web console's: its session cookie + CSRF token stand for the bearer token; undocumented

    @property
    def operation_id(self) -> str:
        return self.handler.__name__
