"""The payload codec and its keys (infra/codec.py), without a server."""

from __future__ import annotations

import base64
import json
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from infra.codec import (
    ENCODING,
    KEY_ID,
    CodecKeyError,
    ConfiguredCodec,
    DecryptionError,
    EncryptionCodec,
    Keyring,
    UnknownKeyError,
    codec_for,
    configured_keyring,
    create_key_file,
    parse_keys,
)
from infra.temporal import DATA_CONVERTER
from settings import Settings
from tests.privacy_helpers import CUSTOMER_TEXT, keyring
from workflows.models import RefundRequest


def request() -> RefundRequest:
    return RefundRequest(
        request_id="r-1",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("750.00"),
        reason=CUSTOMER_TEXT,
        requested_by="agent-amy",
    )


def no_keys(tmp_path: Path, **overrides: object) -> Settings:
    """Settings naming no key (whatever the environment holds), with ``overrides``."""
    return Settings(**{"var_dir": tmp_path, "codec_keys": None, **overrides})  # type: ignore[arg-type]


async def test_a_model_round_trips_through_the_production_converter_encrypted() -> None:
    [payload] = await DATA_CONVERTER.encode([request()])

    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID] == b"test-1"  # the suite's session key (conftest)
    assert b"Thawed" not in payload.data and b"ORD-1001" not in payload.data
    [back] = await DATA_CONVERTER.decode([payload], [RefundRequest])
    assert back == request()


async def test_every_payload_gets_its_own_nonce() -> None:
    codec = EncryptionCodec(keyring("k1"))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"same"')

    first, second = await codec.encode([plain, plain])

    assert first.data != second.data
    assert await codec.decode([first, second]) == [plain, plain]


async def test_a_payload_never_encrypted_passes_through() -> None:
    """Recorded histories and cases opened before encryption stay readable."""
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"reason": "late"}')

    assert await EncryptionCodec(keyring("k1")).decode([plain]) == [plain]


async def test_an_unknown_key_id_is_refused_naming_it() -> None:
    [sealed] = await EncryptionCodec(keyring("old")).encode([Payload(data=b"x")])

    with pytest.raises(UnknownKeyError, match=r"key 'old'.*known: new"):
        await EncryptionCodec(keyring("new")).decode([sealed])


async def test_an_altered_payload_or_a_swapped_key_id_does_not_decrypt() -> None:
    ring = Keyring({"a": os.urandom(32), "b": os.urandom(32)}, "a")
    codec = EncryptionCodec(ring)
    [sealed] = await codec.encode([Payload(data=b"refund 750.00")])
    altered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + b"\0")
    # The key id is authenticated: relabelled, the same bytes are refused.
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"b"}, data=sealed.data)
    truncated = Payload(metadata=sealed.metadata, data=sealed.data[:5])

    for bad in (altered, relabelled, truncated):
        with pytest.raises(DecryptionError):
            await codec.decode([bad])


async def test_after_a_rotation_the_new_key_encrypts_and_the_old_still_decrypts() -> None:
    old = keyring("k1")
    [before] = await EncryptionCodec(old).encode([Payload(data=b"opened under k1")])
    rotated = keyring("k2", ("k1", old.keys["k1"]))

    [after] = await EncryptionCodec(rotated).encode([Payload(data=b"closed under k2")])

    assert after.metadata[KEY_ID] == b"k2"
    decoded = await EncryptionCodec(rotated).decode([before, after])
    assert [p.data for p in decoded] == [b"opened under k1", b"closed under k2"]


def test_keys_are_read_as_id_colon_base64_or_as_json() -> None:
    one, two = os.urandom(32), os.urandom(32)
    b64 = [base64.b64encode(k).decode() for k in (one, two)]

    assert parse_keys(f"k1:{b64[0]}, k2:{b64[1]}") == {"k1": one, "k2": two}
    assert parse_keys(json.dumps({"k1": b64[0], "k2": b64[1]})) == {"k1": one, "k2": two}


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ("k1:c2hvcnQ=", None, "is 5 bytes; AES-256 needs 32"),
        ("k1:not base64!", None, "not valid base64"),
        ("k1", None, "entries are id:base64key"),
        (f"k1:{base64.b64encode(os.urandom(32)).decode()}", "k9", "current key 'k9' is not"),
    ],
)
def test_malformed_keys_stop_the_process_with_the_reason(
    tmp_path: Path, keys: str, current: str | None, message: str
) -> None:
    settings = no_keys(tmp_path, codec_keys=SecretStr(keys), codec_current_key=current)

    with pytest.raises(CodecKeyError, match=message):
        configured_keyring(settings)


def test_without_any_key_a_process_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(CodecKeyError, match="no payload encryption key: set CODEC_KEYS"):
        codec_for(no_keys(tmp_path))


async def test_encryption_disabled_explicitly_stores_payloads_in_clear(tmp_path: Path) -> None:
    codec = codec_for(no_keys(tmp_path, codec_disabled=True))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"late"')

    assert await codec.encode([plain]) == [plain]


def test_the_dev_key_file_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "codec-keys.json"

    assert create_key_file(path) is True
    first = path.read_text()
    assert create_key_file(path) is False  # never overwritten: cases depend on that key

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == first
    ring = configured_keyring(no_keys(tmp_path))
    assert ring.current == "dev-1" and len(ring.keys["dev-1"]) == 32


def test_configured_keys_take_precedence_over_the_key_file(tmp_path: Path) -> None:
    create_key_file(tmp_path / "codec-keys.json")
    key = base64.b64encode(os.urandom(32)).decode()

    ring = configured_keyring(
        no_keys(tmp_path, codec_keys=SecretStr(f"prod-1:{key}"), codec_current_key="prod-1")
    )

    assert set(ring.keys) == {"prod-1"} and ring.current == "prod-1"


def test_every_client_of_the_product_encrypts_with_the_configured_keys() -> None:
    assert isinstance(DATA_CONVERTER.payload_codec, ConfiguredCodec)
