"""Customer data in Temporal stays private: the payload codec (AES-256-GCM) and its keys.

Every payload a client or worker sends to Temporal (workflow and activity inputs and results,
signals, updates, queries, failures' details) is serialized by the pydantic converter, then
encrypted here. The server, its database and the Web UI see only ciphertext; the worker, the
API and the CLI decrypt with the keys they are given.

An encrypted payload carries ``encoding: binary/encrypted`` and ``encryption-key-id`` in its
metadata, and ``nonce (12 bytes) + ciphertext + tag`` as data; the plaintext is the whole
original payload (its own metadata included), and the key id is authenticated with it. Keys
rotate without breaking open cases: the current key encrypts, every key listed decrypts, so
an old key stays listed until no open case holds a payload under it. A payload without that
encoding (recorded before encryption, or written with encryption disabled) passes through.

Keys (a mapping key id -> 32 bytes) come from CODEC_KEYS (``id:base64,id2:base64`` or a JSON
object) and CODEC_CURRENT_KEY, or else from a key file (CODEC_KEY_FILE, default
``$VAR_DIR/codec-keys.json``, which ``make run`` creates for development). Without any key a
process refuses to start, unless CODEC_DISABLED is set: then nothing new is encrypted.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from settings import Settings, get_settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_SIZE = 12
KEY_SIZE = 32
KEY_FILE_NAME = "codec-keys.json"


class CodecKeyError(Exception):
    """The keys are missing or malformed (a configuration error: the process cannot start)."""


class UnknownKeyError(ValueError):
    """A payload was encrypted under a key this process does not hold."""


class DecryptionError(ValueError):
    """A payload does not decrypt under the key it names (altered, or another key's)."""


def new_key() -> str:
    """A fresh random 256-bit key, base64 (as CODEC_KEYS and the key file hold them)."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode()


@dataclass(frozen=True)
class Keyring:
    """The keys a process holds; ``current`` encrypts (None: nothing new is encrypted)."""

    keys: Mapping[str, bytes]
    current: str | None
    source: str = field(default="", compare=False)  # where they came from, for messages

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not key_id or any(c in key_id for c in ",: \t\n"):
                raise CodecKeyError(f"key id {key_id!r}: use letters, digits, '-' or '_'")
            if len(key) != KEY_SIZE:
                raise CodecKeyError(
                    f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_SIZE} (base64 of "
                    "32 random bytes)"
                )
        if self.current is not None and self.current not in self.keys:
            known = ", ".join(sorted(self.keys)) or "none"
            raise CodecKeyError(f"the current key {self.current!r} is not listed (known: {known})")


def _key_bytes(key_id: str, text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CodecKeyError(f"key {key_id!r} is not valid base64") from None


def parse_keys(text: str) -> dict[str, bytes]:
    """``id:base64,id2:base64``, or a JSON object ``{"id": "base64", ...}``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise CodecKeyError(f"CODEC_KEYS is not valid JSON ({err.msg})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise CodecKeyError('CODEC_KEYS as JSON must be an object {"id": "base64 key"}')
        return {str(key_id): _key_bytes(key_id, value) for key_id, value in raw.items()}
    keys: dict[str, bytes] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key_id, colon, value = entry.partition(":")
        if not colon:
            raise CodecKeyError("CODEC_KEYS entries are id:base64key, separated by commas")
        keys[key_id.strip()] = _key_bytes(key_id.strip(), value)
    return keys


def read_key_file(path: Path) -> Keyring:
    """A key file: ``{"current": "id", "keys": {"id": "base64 key", ...}}``."""
    try:
        raw = json.loads(path.read_text())
        keys = raw["keys"]
        current = raw.get("current")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CodecKeyError(f"cannot read the key file {path}: {err}") from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise CodecKeyError(f'{path}: "keys" must be an object {{"id": "base64 key"}}')
    parsed = {str(key_id): _key_bytes(key_id, value) for key_id, value in keys.items()}
    return Keyring(parsed, current or _last(parsed), source=str(path))


def create_key_file(path: Path, key_id: str = "dev-1") -> bool:
    """Write a key file holding one fresh key, readable by its owner only (0600); an existing
    file is kept as is. True if it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps({"current": key_id, "keys": {key_id: new_key()}}, indent=2) + "\n"
    try:
        # O_EXCL: never overwrite a key (the cases encrypted under it would be unreadable).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        file.write(content)
    return True


def _last(keys: Mapping[str, bytes]) -> str | None:
    return list(keys)[-1] if keys else None


def key_file_path(settings: Settings) -> Path:
    return settings.codec_key_file or settings.var_dir / KEY_FILE_NAME


def configured_keyring(settings: Settings) -> Keyring:
    """The keys ``settings`` name: CODEC_KEYS, else the key file; CodecKeyError if none and
    encryption is not explicitly disabled."""
    keys = settings.codec_keys.get_secret_value() if settings.codec_keys is not None else None
    return _keyring(
        keys, settings.codec_current_key, key_file_path(settings), settings.codec_disabled
    )


def _keyring(keys_text: str | None, current: str | None, path: Path, disabled: bool) -> Keyring:
    if keys_text is not None and keys_text.strip():
        keys = parse_keys(keys_text)
        return Keyring(keys, None if disabled else current or _last(keys), source="CODEC_KEYS")
    if path.exists():
        found = read_key_file(path)
        chosen = None if disabled else current or found.current
        return Keyring(found.keys, chosen, source=str(path))
    if disabled:
        return Keyring({}, None, source="CODEC_DISABLED")
    raise CodecKeyError(
        "no payload encryption key: set CODEC_KEYS (id:base64key,...) and CODEC_CURRENT_KEY, "
        f"or CODEC_KEY_FILE (none at {path}; `make run` creates one for development), or set "
        "CODEC_DISABLED=true to run without encrypting customer data"
    )


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, under the keyring's current key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        # One cipher object per key, built once: no key derivation per payload.
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        current = self.keyring.current
        if current is None:
            return list(payloads)
        cipher = self._ciphers[current]
        key_id = current.encode()
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_SIZE)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id)
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(payload) for payload in payloads]

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # never encrypted: recorded before encryption, or disabled
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(sorted(self._ciphers)) or "none"
            raise UnknownKeyError(
                f"payload encrypted under key {key_id!r}, which this process does not hold "
                f"(known: {known}); add it to CODEC_KEYS to read it"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], key_id.encode())
        except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce
            raise DecryptionError(
                f"payload under key {key_id!r} does not decrypt (altered, or another key of "
                "that id)"
            ) from None
        return Payload.FromString(plain)


@lru_cache(maxsize=8)
def _codec_for(
    keys: str | None, current: str | None, path: Path, disabled: bool
) -> EncryptionCodec:
    return EncryptionCodec(_keyring(keys, current, path, disabled))


def codec_for(settings: Settings) -> EncryptionCodec:
    """The codec of ``settings``' keys, built once per configuration (a failure is not kept:
    the dev runner may create the key file after a first attempt)."""
    keys = settings.codec_keys.get_secret_value() if settings.codec_keys is not None else None
    return _codec_for(
        keys, settings.codec_current_key, key_file_path(settings), settings.codec_disabled
    )


class ConfiguredCodec(PayloadCodec):
    """The codec of the process's configured keys (``get_settings()``), looked up when first
    used: the one data converter is a module constant every client imports, built before any
    settings are read."""

    def codec(self) -> EncryptionCodec:
        return codec_for(get_settings())

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.codec().encode(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.codec().decode(payloads)


_PAYLOAD = Payload.DESCRIPTOR.full_name


async def decode_message(message: Message, codec: PayloadCodec) -> None:
    """Decode, in place, every payload anywhere in ``message`` (a history, an event): for
    keeping a history readable without the keys, e.g. a recorded test history."""
    for descriptor, value in message.ListFields():
        entry = descriptor.message_type
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE or entry is None:
            continue
        if entry.GetOptions().map_entry:
            target = entry.fields_by_name["value"]
            if target.message_type is None:
                continue
            for item in value.values():
                if target.message_type.full_name == _PAYLOAD:
                    item.CopyFrom((await codec.decode([item]))[0])
                else:
                    await decode_message(item, codec)
        elif descriptor.is_repeated:
            if entry.full_name == _PAYLOAD:
                decoded = await codec.decode(list(value))
                del value[:]
                value.extend(decoded)
            else:
                for item in value:
                    await decode_message(item, codec)
        elif entry.full_name == _PAYLOAD:
            value.CopyFrom((await codec.decode([value]))[0])
        else:
            await decode_message(value, codec)
