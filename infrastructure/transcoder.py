"""The stored events' transcoder: eventsourcing's JSON transcoding (same bytes written, same objects read back),
decoding with orjson.

Start-up decodes every stored event of the orders it holds (30,000 at 10,000 open orders); the standard library's
decoder calling the transcoder's hook for each of their objects was a third of that pass. orjson parses the
document, then one walk, innermost objects first as the hook is called, turns the tagged objects
(``{"_type_": ..., "_data_": ...}``) into their types. What orjson refuses and the standard library accepts (NaN,
integers beyond 64 bits) is decoded by the standard library as before.
"""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder


class OrjsonTranscoder(JSONTranscoder):
    def decode(self, data: bytes) -> Any:
        """The object encoded in ``data`` (UTF-8 JSON bytes), as ``JSONTranscoder.decode`` returns it."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        return self._untag(parsed)

    def _untag(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) is dict or type(item) is list:
                    value[key] = self._untag(item)
            return self._decode_obj(value) if len(value) == 2 else value
        if kind is list:
            return [self._untag(item) if type(item) is dict or type(item) is list else item for item in value]
        return value
