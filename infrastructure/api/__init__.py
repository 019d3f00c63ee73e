"""The HTTP API (aiohttp, JSON): ``app`` builds it, one module per group of routes."""

from execledger.infrastructure.api.app import OPENAPI, create_api, require_token_for
from execledger.infrastructure.api.context import ApiContext
from execledger.infrastructure.net import is_loopback

__all__ = ["OPENAPI", "ApiContext", "create_api", "is_loopback", "require_token_for"]
