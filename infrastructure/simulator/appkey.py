"""The aiohttp application key under which handlers find their ``KrakenSimulator``."""

from __future__ import annotations

from aiohttp import web

SIMULATOR: web.AppKey = web.AppKey("simulator", object)
