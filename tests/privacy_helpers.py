"""Looking at what Temporal stores, as someone without the keys would: for the privacy
specifications (test_codec.py, test_privacy.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec

from infra.codec import ENCODING, KEY_ID, EncryptionCodec, Keyring, decode_message
from infra.temporal import data_converter

# Customer text a refund carries in free text: its reason names a phone, an email, an address.
CUSTOMER_TEXT = (
    "Thawed on arrival, call Ada at +1 512 555 0100 or ada@example.com, 1 Main St Austin"
)
CUSTOMER_FRAGMENTS = ("Thawed on arrival", "555 0100", "ada@example.com", "1 Main St")


def keyring(current: str, *others: tuple[str, bytes]) -> Keyring:
    """A keyring of a fresh ``current`` key plus ``others`` (id, key) kept for decryption."""
    return Keyring({**dict(others), current: os.urandom(32)}, current)


def client_with(client: Client, codec: PayloadCodec | None) -> Client:
    """The same connection with another converter: production's with ``codec``'s keys, or the
    plain pydantic converter (no codec) of someone who has no key."""
    config = client.config()
    config["data_converter"] = (
        data_converter(codec) if codec is not None else pydantic_data_converter
    )
    return Client(**config)


def codec_of(ring: Keyring) -> EncryptionCodec:
    return EncryptionCodec(ring)


class _Collect(PayloadCodec):
    """Walks a history's payloads (via ``decode_message``) and keeps them, unchanged."""

    def __init__(self) -> None:
        self.seen: list[Payload] = []

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen.extend(payloads)
        return list(payloads)


async def stored_payloads(history: WorkflowHistory) -> list[Payload]:
    """Every payload of ``history`` as the server stores it, but search attributes (indexed
    in clear by design; they carry a ``type``) and the SDK's patch markers (a patch's name,
    written by the SDK without the codec)."""
    collect = _Collect()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            await decode_message(event, collect)
    return [payload for payload in collect.seen if "type" not in payload.metadata]


def key_ids(payloads: list[Payload]) -> set[str]:
    return {p.metadata[KEY_ID].decode() for p in payloads if p.metadata.get("encoding") == ENCODING}


async def raw_history(client: Client, handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
    """The case's history fetched by a client without any key."""
    plain = client_with(client, None)
    return await plain.get_workflow_handle(handle.id).fetch_history()


def history_bytes(history: WorkflowHistory) -> bytes:
    """Every byte the server stores of ``history``'s events (payload data unencoded)."""
    return b"".join(event.SerializeToString() for event in history.events)


async def decoded_bytes(history: WorkflowHistory, codec: PayloadCodec) -> bytes:
    """``history``'s bytes with every payload decrypted (the original is left as it was)."""
    copy = WorkflowHistory.from_json(history.workflow_id, history.to_json())
    for event in copy.events:
        await decode_message(event, codec)
    return history_bytes(copy)
