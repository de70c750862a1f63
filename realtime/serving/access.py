"""Who may use the server: the page's origin and an allowlist for the signaling WebSocket, a bearer token
for everything that starts or shows a session, and a limit on session starts per client address.

- **Origin** (OWASP's WebSocket Security Cheat Sheet, "Cross-Site WebSocket Hijacking"): a browser sends the
  ``Origin`` of the page that opens a WebSocket, and any page the user visits may try to open ours. The
  WebSocket is accepted only from the server's own page (the ``Origin`` equals the scheme and ``Host`` the
  request came to) or an origin on the allowlist (``server.py --allow-origin``); a request without
  ``Origin`` is not from a browser page (a command-line client, OBS) and is left to the token. The same
  allowlist answers the CORS preflights of WHIP and WHEP clients on other pages.
- **Token** (as Jupyter does): when the server listens beyond loopback it requires a token, given
  (``--token``) or generated at start and printed in the page's URL (``/?token=...``). The page passes it on,
  WHIP and WHEP clients send ``Authorization: Bearer TOKEN`` (RFC 9725, Sec. 4.5; RFC 6750), a WebSocket or a
  GET may carry it as the ``token`` query parameter (browsers cannot set headers on a WebSocket). Compared in
  constant time.
- **Session starts per client address**: at most ``starts_per_minute`` in any 60 s from one address (a
  sliding window), loopback addresses exempt unless told otherwise.

Every refusal is a :class:`Refusal` with the HTTP status (401, 403 or 429) and one line, logged once.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TOKEN_QUERY = "token"
"""The query parameter that may carry the token (the page's URL, the WebSocket's, GETs)."""


@dataclass(frozen=True)
class Refusal(Exception):
    """A request the access policy turns away.

    Attributes:
        status: the HTTP status: 401 (no or a wrong token), 403 (an origin not allowed), 429 (too many
            session starts from one address).
        message: one line for the client and the log.
        retry_after_s: for 429, seconds until a start would be admitted again.
    """

    status: int
    message: str
    retry_after_s: int = 0

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case without a trailing slash (the form browsers send)."""
    return origin.strip().rstrip("/").lower()


def new_token() -> str:
    """A fresh random token: 24 URL-safe characters (144 bits, :func:`secrets.token_urlsafe`)."""
    return secrets.token_urlsafe(18)


class StartLimiter:
    """At most ``starts_per_minute`` session starts from one client address in any 60 seconds.

    Args:
        starts_per_minute: the limit; 0 = none.
        exempt_loopback: loopback addresses are never limited (the user on their own machine).
        clock: seconds, monotonic (``time.monotonic``).

    Raises:
        ValueError: for a negative limit.
    """

    WINDOW_S = 60.0

    def __init__(
        self,
        starts_per_minute: int,
        *,
        exempt_loopback: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if starts_per_minute < 0:
            raise ValueError(f"starts_per_minute must be >= 0, got {starts_per_minute}")
        self.starts_per_minute = starts_per_minute
        self.exempt_loopback = exempt_loopback
        self._clock = clock
        self._starts: dict[str, collections.deque[float]] = {}

    def admit(self, address: str) -> None:
        """Count a session start from ``address``.

        Raises:
            Refusal: 429 when ``address`` already started ``starts_per_minute`` sessions in the last 60 s.
        """
        if self.starts_per_minute == 0 or (self.exempt_loopback and is_loopback(address)):
            return
        now = self._clock()
        starts = self._starts.setdefault(address, collections.deque())
        while starts and now - starts[0] >= self.WINDOW_S:
            starts.popleft()
        if len(starts) >= self.starts_per_minute:
            retry = max(1, int(self.WINDOW_S - (now - starts[0]) + 0.999))
            raise Refusal(
                429,
                f"too many sessions started from {address}: at most {self.starts_per_minute} a minute; "
                f"try again in {retry} s",
                retry,
            )
        starts.append(now)
        if len(self._starts) > 4096:  # forget addresses idle for a whole window
            for stale in [a for a, s in self._starts.items() if not s or now - s[-1] >= self.WINDOW_S]:
                del self._starts[stale]


@dataclass(frozen=True)
class AccessPolicy:
    """The server's access rules (see the module docstring).

    Attributes:
        token: required of every request that starts or shows a session (and of ``/targets`` and
            ``/status``); None = no token (loopback use, as before).
        allowed_origins: origins besides the page's own that may open the WebSocket and call WHIP / WHEP
            from a browser (``scheme://host[:port]``; ``*`` = any).
        starts: the per-address limit on session starts.
    """

    token: str | None = None
    allowed_origins: frozenset[str] = frozenset()
    starts: StartLimiter = field(default_factory=lambda: StartLimiter(0))

    @classmethod
    def create(
        cls, token: str | None = None, allowed_origins: Iterable[str] = (), starts_per_minute: int = 0
    ) -> AccessPolicy:
        """A policy with ``allowed_origins`` normalized (:func:`normalize_origin`).

        Raises:
            ValueError: for an empty token or a negative limit.
        """
        if token is not None and not token:
            raise ValueError("the token must not be empty")
        origins = frozenset(normalize_origin(o) for o in allowed_origins)
        return cls(token, origins, StartLimiter(starts_per_minute))

    def origin_allowed(self, origin: str | None, own_origin: str) -> bool:
        """Whether a browser page at ``origin`` may use the server (None: not a browser page: allowed)."""
        if origin is None:
            return True
        origin = normalize_origin(origin)
        return (
            origin == normalize_origin(own_origin)
            or origin in self.allowed_origins
            or ("*" in self.allowed_origins)
        )

    def check_origin(self, origin: str | None, own_origin: str, what: str) -> None:
        """Raises :class:`Refusal` 403 when ``origin`` may not use ``what`` (see :meth:`origin_allowed`)."""
        if not self.origin_allowed(origin, own_origin):
            raise Refusal(
                403,
                f"{what} refused: origin {str(origin)[:100]!r} is neither this server's page ({own_origin}) "
                "nor allowed (server.py --allow-origin)",
            )

    def check_token(self, headers: Mapping[str, str], query: Mapping[str, str], what: str) -> None:
        """Raises :class:`Refusal` 401 when a token is required and neither ``Authorization: Bearer``
        nor the ``token`` query parameter carries it."""
        if self.token is None:
            return
        given = query.get(TOKEN_QUERY)
        authorization = headers.get("Authorization", "")
        if authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        if given is None:
            raise Refusal(
                401,
                f"{what} needs the server's token (Authorization: Bearer TOKEN, or ?token=TOKEN): open the "
                "URL the server printed at start",
            )
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            raise Refusal(401, f"{what} refused: wrong token")
