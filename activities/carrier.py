"""The carrier: where a parcel is, and asking for an investigation or a redelivery.

``LocalCarrier`` is the default, real code over this product's database (``shipments``,
written by whoever hears from the carrier, and ``carrier_requests``). A company wired to a
real carrier implements ``Carrier`` and names it in CARRIER.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from infra.db import CarrierRequestRecord, Database, Shipment
from workflows.rush_models import CarrierRequestKind, DeliveryState, Tracking

_PREFIXES = {CarrierRequestKind.INVESTIGATION: "INV", CarrierRequestKind.REDELIVERY: "RDL"}


class Carrier(Protocol):
    def track(self, order_id: str) -> Tracking:
        """The parcel of ``order_id`` as the carrier sees it; in transit when it knows none."""
        ...

    def request(
        self, key: str, *, case_id: str, order_id: str, kind: CarrierRequestKind, at: datetime
    ) -> str:
        """Ask for an investigation or a redelivery once per ``key``; return its reference
        (the first one, on a repeat)."""
        ...


class LocalCarrier:
    def __init__(self, db: Database) -> None:
        self._db = db

    def track(self, order_id: str) -> Tracking:
        with self._db.read() as session:
            shipment = session.get(Shipment, order_id)
            if shipment is None:
                # Not handed to the carrier yet: for the customer that is still "on its way".
                return Tracking()
            return Tracking(
                state=DeliveryState(shipment.state),
                tracking_number=shipment.tracking_number,
                delivered_at=shipment.delivered_at,
                attempts=shipment.attempts,
            )

    def request(
        self, key: str, *, case_id: str, order_id: str, kind: CarrierRequestKind, at: datetime
    ) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:10].upper()
        reference = f"{_PREFIXES[kind]}-{digest}"
        try:
            with self._db.transaction() as session:
                # No read first: the primary key decides between concurrent attempts with
                # one key, and the losers look the winner's request up below.
                session.add(
                    CarrierRequestRecord(
                        key=key,
                        case_id=case_id,
                        order_id=order_id,
                        kind=kind.value,
                        reference=reference,
                        created_at=at,
                    )
                )
            return reference
        except IntegrityError:
            # Asked before, maybe concurrently: the first request's reference, whatever this
            # attempt would have made of the key.
            with self._db.read() as session:
                existing = session.get(CarrierRequestRecord, key)
                if existing is None:
                    raise
                return existing.reference
