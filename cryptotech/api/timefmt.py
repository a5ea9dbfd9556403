"""Times for people: stored UNIX seconds (UTC) shown in the configured zone, and back.

The store keeps UNIX seconds in UTC. The API shows every time as an aware datetime in the
configured zone (``America/Sao_Paulo`` by default), which JSON renders as ISO-8601 with its
offset. The ``inicio``/``fim`` filters are read with :func:`parse_instant`: ISO-8601 with or
without an offset; a value without one is a wall-clock time of the configured zone.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import overload
from zoneinfo import ZoneInfo

#: What ``inicio``/``fim`` accept (documented in the OpenAPI schema as the parameter pattern).
INSTANT_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)?$"
)
_INSTANT = re.compile(INSTANT_PATTERN)
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


@overload
def local(epoch: float, zone: ZoneInfo) -> datetime: ...
@overload
def local(epoch: None, zone: ZoneInfo) -> None: ...
@overload
def local(epoch: float | None, zone: ZoneInfo) -> datetime | None: ...


def local(epoch: float | None, zone: ZoneInfo) -> datetime | None:
    """UNIX seconds as an aware datetime in ``zone`` (``None`` stays ``None``).

    >>> local(1735689600, ZoneInfo("America/Sao_Paulo")).isoformat()
    '2024-12-31T21:00:00-03:00'
    """
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone(zone)


def local_iso(epoch: float | None, zone: ZoneInfo) -> str:
    """:func:`local` as ISO-8601 text (empty for ``None``), as the CSV export writes it.

    >>> local_iso(1735689600.5, ZoneInfo("UTC"))
    '2025-01-01T00:00:00.500000+00:00'
    >>> local_iso(None, ZoneInfo("UTC"))
    ''
    """
    value = local(epoch, zone)
    return "" if value is None else value.isoformat()


def parse_instant(text: str, zone: ZoneInfo) -> float:
    """``inicio``/``fim`` text as UNIX seconds; a value without offset is a time of ``zone``.

    Accepts ``AAAA-MM-DD``, ``AAAA-MM-DDTHH:MM`` (seconds and fractions optional, ``T`` or a
    space) and an optional offset (``Z``, ``-03:00`` or ``-0300``). Raises ``ValueError``
    with a message in Portuguese.

    >>> sp = ZoneInfo("America/Sao_Paulo")
    >>> parse_instant("2025-01-01T00:00", sp) - parse_instant("2025-01-01T00:00Z", sp)
    10800.0
    >>> parse_instant("2025-01-01", ZoneInfo("UTC"))
    1735689600.0
    >>> parse_instant("2025-02-30T10:00", sp)
    Traceback (most recent call last):
    ...
    ValueError: data inexistente: dia, mês, hora ou minuto fora do calendário
    >>> parse_instant("9999-12-31T23:59", sp)  # year 10000 in UTC  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: data fora do intervalo aceito: use uma data entre os anos 0001 e 9999, ...
    """
    value = text.strip()
    if not _INSTANT.match(value):
        raise ValueError(
            "data/hora inválida; use AAAA-MM-DDTHH:MM (ex.: 2025-01-31T14:30), com ou sem "
            "fuso (ex.: 2025-01-31T14:30-03:00); sem fuso vale o horário configurado"
        )
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    value = _COMPACT_OFFSET.sub(r"\1:\2", value) if "T" in value or " " in value else value
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("data inexistente: dia, mês, hora ou minuto fora do calendário") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    try:
        epoch = dt.timestamp()
        local(epoch, zone)  # shown back in the zone (and in UTC): both must exist
    except (OverflowError, ValueError, OSError):
        raise ValueError(OUT_OF_RANGE) from None
    return epoch


#: The answer for an instant that cannot be shown in UTC or in the configured zone.
OUT_OF_RANGE = ("data fora do intervalo aceito: use uma data entre os anos 0001 e 9999, "
                "no fuso configurado e em UTC (ex.: 2025-01-31T14:30)")
