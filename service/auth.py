"""API keys (optional, off by default): who may call the service, and which models.

The keys file (``--api-keys-file`` / ``TFSHIP_API_KEYS_FILE``) has one key per line, with
optional fields after it::

    # key                                  optional: client name, models it may use
    3f9c0d6e2b1a4c8e9d7f6a5b4c3d2e1f       name=batch-scorer
    8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d       name=canary-tester models=digits,linear

A client sends its key as ``Authorization: Bearer KEY`` or in a header of the server's
choosing (``X-API-Key`` by default; TF Serving and Triton clients can add headers but not
change how they authenticate); over gRPC, as the same metadata entries in lower case.

Only SHA-256 digests of the keys are kept in memory, and a presented key is compared with
every one of them with ``hmac.compare_digest``, so neither the match nor its position
shows in the timing. Keys are never logged: log lines carry the client's name. Each worker
holds one store for REST and gRPC, and a thread of its own re-reads the file within a
second of a change, whether requests come or not, so keys rotate without a restart and a
revocation holds from then on. A changed file that cannot be read, or holds no valid key,
refuses every key until it is fixed (and says why in the log): the keys of an older file
never come back, since a revocation may be what changed it.

Several keys in one request (two ``X-API-Key`` headers, or gRPC metadata entries) are
joined with commas, as WSGI servers join repeated headers, and so refused on both protocols.

No key, or a key that is not in the file: 401 (gRPC ``UNAUTHENTICATED``). A valid key used
for a model it does not list: 403 (``PERMISSION_DENIED``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import PermissionDenied, Unauthenticated
from service.file_stamp import file_stamp
from service.settings import ServiceSettings

log = logging.getLogger("tfship.auth")
_RECHECK_SECONDS = 1.0


class KeysFileError(ValueError):
    """The keys file cannot be used; the message says which line and why."""


@dataclass(frozen=True)
class Client:
    name: str
    # None = every model.
    models: frozenset[str] | None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    def check_model(self, model: str | None) -> None:
        if model is not None and not self.may_use(model):
            raise PermissionDenied(f"this API key may not use model '{model}'")


def api_keys_for(settings: ServiceSettings) -> ApiKeys | None:
    """The keys a server checks, or None when authentication is off."""
    if settings.api_keys_file is None:
        return None
    return ApiKeys(settings.api_keys_file, settings.api_key_header, frozenset(settings.auth_exempt))


def metadata_credentials(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """gRPC metadata as REST headers arrive through WSGI: a repeated entry joined with
    commas (so two keys are one invalid key on both protocols, not the last one here)."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, bytes):  # "-bin" entries: never credentials
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys_file(path: Path) -> list[tuple[bytes, Client]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"API keys file {path}: cannot read: {exc}") from None
    entries: list[tuple[bytes, Client]] = []
    seen: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        key, options = fields[0], fields[1:]
        where = f"API keys file {path}, line {number}"
        if len(key) < 16:
            raise KeysFileError(f"{where}: a key must be at least 16 characters")
        name, models = f"key-{number}", None
        for option in options:
            field, sep, value = option.partition("=")
            if not sep or not value or field not in ("name", "models"):
                raise KeysFileError(
                    f"{where}: expected name=CLIENT or models=A,B after the key, got {option!r}"
                )
            if field == "name":
                name = value
            else:
                models = frozenset(filter(None, value.split(",")))
        digest = _digest(key)
        if digest in seen:
            raise KeysFileError(f"{where}: the same key appears twice")
        seen.add(digest)
        entries.append((digest, Client(name, models)))
    if not entries:
        raise KeysFileError(f"API keys file {path} holds no key")
    return entries


class ApiKeys:
    def __init__(self, path: Path, header: str, exempt: frozenset[str]) -> None:
        self.path = path
        self.header = header
        self.exempt = exempt
        self._entries = parse_keys_file(path)  # a bad file at start-up stops the server
        self._stamp = file_stamp(path)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="tfship-keys", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(_RECHECK_SECONDS):
            self.reload_if_changed()

    def close(self) -> None:
        self._stop.set()

    def reload_if_changed(self) -> None:
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            entries = parse_keys_file(self.path)
        except KeysFileError as exc:
            # Fail closed: the previous keys may be the ones this change revoked.
            self._entries = []
            log.error("%s; every API key is refused until the file is fixed", exc)
            return
        self._entries = entries
        log.info("API keys file %s reloaded: %d keys", self.path, len(entries))

    def authenticate(self, headers: Mapping[str, str]) -> Client:
        """The client a request's headers (or gRPC metadata) identify; raises 401."""
        presented = self._presented(headers)
        if presented is None:
            raise Unauthenticated(
                f"an API key is required: send 'Authorization: Bearer KEY' or '{self.header}: KEY'"
            )
        digest = _digest(presented)
        found: Client | None = None
        for (
            known,
            client,
        ) in (
            self._entries
        ):  # one read of the list the watcher swaps  # no early exit: the timing shows nothing
            if hmac.compare_digest(known, digest):
                found = client
        if found is None:
            raise Unauthenticated("the API key is not valid")
        return found

    def _presented(self, headers: Mapping[str, str]) -> str | None:
        authorization = headers.get("Authorization") or headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        value = headers.get(self.header) or headers.get(self.header.lower())
        return value.strip() if value and value.strip() else None
