"""Text a caller sends, checked before it reaches a POS, the database or a log line.

A lone surrogate ("\\ud800", which JSON can carry) has no UTF-8 form, so every POS request
and every database write made with it fails in Python's own words; control characters
(NUL above all, which PostgreSQL refuses in text) have no place in a name or an id; and an
unbounded string costs whatever the caller chooses. Refused here with the field's name.
"""

from __future__ import annotations

import re

from gateway.domain.errors import ValidationError

MAX_ID_LENGTH = 100  # a POS id (UUID, number), an order id, a company id
MAX_KEYWORD_LENGTH = 200  # a customer search

NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def check_text(value: str, field: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    if len(value) > max_length:
        raise ValidationError(f"{field} is limited to {max_length} characters", field=field)
    if NOT_TEXT.search(value):
        raise ValidationError(
            f"{field} must be printable text (no control characters or lone surrogates)",
            field=field,
        )
    return value
