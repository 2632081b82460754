"""The carrier: where a parcel is, asking for an investigation or a redelivery, and freight
claims (filed once, then asked where they stand).

``LocalCarrier`` is the default, real code over this product's database (``shipments``,
written by whoever hears from the carrier, ``carrier_requests`` and ``carrier_claims``). A
company wired to a real carrier implements ``Carrier`` and names it in CARRIER.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from infra.db import CarrierClaim, CarrierRequestRecord, Database, Shipment
from workflows.freight_claim_models import CarrierClaimStatus, ClaimStatus
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

    def file_claim(
        self, key: str, *, case_id: str, order_id: str, amount: Decimal, at: datetime
    ) -> str:
        """File a freight claim for ``amount`` once per ``key``; return its reference (the
        first one, on a repeat)."""
        ...

    def claim_status(self, key: str) -> ClaimStatus:
        """Where the claim filed under ``key`` stands: filed, settled (and for how much) or
        denied. ``LookupError`` for a key never filed."""
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

    def file_claim(
        self, key: str, *, case_id: str, order_id: str, amount: Decimal, at: datetime
    ) -> str:
        reference = f"FCL-{hashlib.sha256(key.encode()).hexdigest()[:10].upper()}"
        try:
            with self._db.transaction() as session:
                # As for requests: the primary key decides between concurrent attempts.
                session.add(
                    CarrierClaim(
                        key=key,
                        case_id=case_id,
                        order_id=order_id,
                        amount=amount,
                        reference=reference,
                        status=CarrierClaimStatus.FILED.value,
                        settled_amount=None,
                        filed_at=at,
                        updated_at=at,
                    )
                )
            return reference
        except IntegrityError:
            with self._db.read() as session:
                existing = session.get(CarrierClaim, key)
                if existing is None:
                    raise
                return existing.reference

    def claim_status(self, key: str) -> ClaimStatus:
        with self._db.read() as session:
            claim = session.get(CarrierClaim, key)
            if claim is None:
                raise LookupError(f"no freight claim was filed under {key}")
            return ClaimStatus(
                status=CarrierClaimStatus(claim.status), settled_amount=claim.settled_amount
            )
