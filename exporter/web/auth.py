"""Basic auth for basic_auth_users: bcrypt hashes, in the same time for every user, known or not."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Mapping


def bcrypt_concurrency(cpus: int | None) -> int:
    """bcrypt checks at once: one per core, as each is pure CPU; more would only slow every one of them.
    At most 4: the exporter is a guest on the host it watches, and wrong passwords from many addresses
    must not take all of a large host's cores (the 8 HTTP workers were the bound while they ran bcrypt)."""
    return min(4, max(2, cpus or 2))


BCRYPT_CONCURRENCY = bcrypt_concurrency(os.cpu_count())
_BCRYPT_HASH = re.compile(r"^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def is_bcrypt_hash(value: object) -> bool:
    """A hash BasicAuth can check: `$2y$10$...` as `htpasswd -nBC 10 ""` prints, cost 4 to 31."""
    return isinstance(value, str) and _BCRYPT_HASH.match(value) is not None


class BasicAuth:
    """Checks Basic credentials against bcrypt hashes; a success is remembered, bcrypt being slow.

    The cache holds, per user, an HMAC (with a per-process random key) of the hash and the password that
    last verified, so no password is kept in memory and the comparison is constant-time.

    Timing tells no user names: a check the cache does not answer runs one bcrypt per cost the file
    uses (the user's own hash at its cost, a decoy at each other cost; decoys alone for an unknown
    user), so every user, known or not, costs the same whatever costs the file mixes. bcrypt releases the
    GIL: up to BCRYPT_CONCURRENCY checks run side by side, and a flood of them takes no more cores than
    that. Under the HTTP server, known() is asked first and check() runs outside its workers (see
    BasicAuthGate in exporter/web/middleware.py), so a good login never waits for a wrong one's bcrypt.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = {user: hashed.encode() for user, hashed in users.items()}
        # A decoy per cost: a salt with a hash part that never matches; bcrypt does the full work anyway.
        self._decoys = {cost: _decoy_hash(cost) for cost in sorted({_cost(h) for h in self.users.values()})}
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._bcrypt_slots = threading.BoundedSemaphore(BCRYPT_CONCURRENCY)
        self.bcrypt_calls = 0

    def known(self, user: str, password: bytes) -> bool:
        """True when these credentials verified before: an HMAC and a constant-time compare, no bcrypt.
        False says nothing: only check() (a bcrypt) tells a wrong password from one not yet verified."""
        hashed = self.users.get(user)
        if hashed is None:
            return False
        with self._lock:
            cached = self._verified.get(user)
        return cached is not None and hmac.compare_digest(cached, self._digest(hashed, password))

    def check(self, user: str, password: bytes) -> bool:
        if self.known(user, password):
            return True
        hashed = self.users.get(user)
        verified = self._bcrypt(password[:72], hashed)  # an unknown user pays it too (see the class)
        if not verified or hashed is None:
            return False
        with self._lock:
            self._verified[user] = self._digest(hashed, password)
        return True

    def _digest(self, hashed: bytes, password: bytes) -> bytes:
        """What the cache keeps of a verified password. bcrypt reads 72 bytes at most; Go's
        CompareHashAndPassword (and htpasswd) ignore the rest too."""
        return hmac.new(self._key, hashed + b"\0" + password[:72], hashlib.sha256).digest()

    def _bcrypt(self, password: bytes, hashed: bytes | None) -> bool:
        """True when `hashed` (None: an unknown user) matches; as long for every user (see the class)."""
        import bcrypt  # noqa: PLC0415 (imported when basic auth is first used)

        own_cost = _cost(hashed) if hashed is not None else None
        ok = False
        with self._bcrypt_slots:
            with self._lock:
                self.bcrypt_calls += 1
            for cost, decoy in self._decoys.items():
                real = hashed if hashed is not None and cost == own_cost else None
                try:
                    matched = bcrypt.checkpw(password, real or decoy)
                except ValueError:
                    matched = False
                ok = ok or (matched and real is not None)
        return ok

    def check_header(self, authorization: str | None) -> bool:
        """The `Authorization: Basic base64(user:password)` request header."""
        credentials = basic_credentials(authorization)
        return credentials is not None and self.check(*credentials)


def basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """User and password of an `Authorization: Basic base64(user:password)` header; None if it is not one."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", errors="surrogateescape"), password


def _cost(hashed: bytes) -> int:
    """The cost of a hash is_bcrypt_hash accepted: `$2y$10$...` -> 10."""
    return int(hashed[4:6])


def _decoy_hash(cost: int) -> bytes:
    """A bcrypt hash of that cost that no password matches (its hash part is not bcrypt's output)."""
    import bcrypt  # noqa: PLC0415 (as in BasicAuth._bcrypt)

    return bcrypt.gensalt(rounds=cost) + b"." * 31
