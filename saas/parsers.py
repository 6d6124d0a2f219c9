"""The API's JSON parser: DRF's, plus a clean 400 for JSON nested too deeply to parse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as BaseJSONParser


class JSONParser(BaseJSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        # `[[[[…]]]]` a few thousand levels deep fits in any body limit, and Python's json
        # raises RecursionError on it, which DRF (catching ValueError only) turns into a 500.
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
