"""Every setting of the product, read once from the environment.

Defaults are the written procedures' own rules (see ``../docs``). A setting changes new cases
only: the rules in force when a case opens are recorded with it (``CaseRules``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from holidays import country_holidays
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.calendar import BusinessCalendar
from workflows.models import (
    ApprovalRules,
    CancellationRules,
    CaseRules,
    ComplaintRules,
    Department,
    FreightClaimRules,
    OrderChangeRules,
    RushRules,
)
from workflows.sla_models import SlaRules

ROOT = Path(__file__).resolve().parent


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False


def _default_departments() -> dict[str, Department]:
    return {
        "quality_assurance": Department(
            name="Quality Assurance", extension="311", email="qa@exoticmeats.com"
        ),
        "food_safety": Department(name="Food Safety", extension="311", email="qa@exoticmeats.com"),
        "commercial": Department(
            name="Commercial", extension="201", email="commercial@exoticmeats.com"
        ),
        "it_support": Department(
            name="IT Support", extension="411", email="techsupport@exoticmeats.com"
        ),
        "accounting": Department(
            name="Accounting", extension="203", email="accounting@exoticmeats.com"
        ),
        # Emergency Procedures: after hours, food safety and medical complaints page it.
        "emergency_line": Department(
            name="Emergency Line", extension="911", email="emergency@exoticmeats.com"
        ),
    }


class Settings(BaseSettings):
    """Environment variables are the field names in upper case (``DATABASE_URL``...)."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    # Where things run. Temporal's own connection (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    # TEMPORAL_TLS*, TEMPORAL_API_KEY) is read by temporalio.envconfig, not here.
    database_url: str = f"sqlite:///{ROOT / 'var' / 'cases.db'}"
    task_queue: str = "casework"
    var_dir: Path = ROOT / "var"
    dev_server_port: int = 7233
    dev_server_ui_port: int = 8233
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    # Pluggable external systems ("module:factory"); the defaults are local, over the database.
    order_system: str = "activities.orders:LocalOrderSystem"
    payment_gateway: str = "activities.payments:LocalPaymentGateway"
    carrier: str = "activities.carrier:LocalCarrier"
    email_transport: Literal["outbox", "smtp"] = "outbox"
    smtp: SmtpSettings = SmtpSettings()
    # Delivery retries (activities.mail): the first after EMAIL_RETRY_FIRST_INTERVAL, doubling
    # up to EMAIL_RETRY_MAX_INTERVAL; an email still undelivered EMAIL_GIVE_UP_AFTER after it
    # was queued is marked failed. A dispatcher holds the emails it claimed for
    # EMAIL_CLAIM_LEASE; after that (it crashed) another dispatcher may take them over.
    email_retry_first_interval: timedelta = timedelta(seconds=30)
    email_retry_max_interval: timedelta = timedelta(minutes=30)
    email_give_up_after: timedelta = timedelta(days=2)
    email_claim_lease: timedelta = timedelta(minutes=5)

    # The company.
    company_name: str = "Exotic Meats Company"
    currency: str = "USD"
    support_email: str = "support@exoticmeats.com"
    cs_manager_email: str = "csmanager@exoticmeats.com"
    return_address: str = "Exotic Meats Company Returns, 100 Warehouse Way, Austin, TX 78701"
    departments: dict[str, Department] = Field(default_factory=_default_departments)

    # Manager Authorization Required (strictly greater than the amount).
    refund_approval_above: Decimal = Decimal("500.00")
    approver_roles: tuple[str, ...] = ("supervisor", "manager")
    # Decisions sent as the Temporal signal `decision` (the Temporal UI). Each must carry the
    # approver's single-use code from the approval email; False refuses every one of them.
    decision_signals: bool = True

    # Hours of Operation: 8 AM - 8 PM Eastern, Monday-Friday.
    business_timezone: str = "America/New_York"
    business_opens: time = time(8, 0)
    business_closes: time = time(20, 0)
    business_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    holidays: tuple[date, ...] = ()

    # Approval gate timings, in business time.
    approval_remind_after: timedelta = timedelta(hours=4)
    approval_escalate_after: timedelta = timedelta(hours=8)
    approval_expire_after_days: int = 3

    # Returns Processing.
    return_window: timedelta = timedelta(days=30)
    return_reminder_after: timedelta = timedelta(days=14)
    ra_expires_after: timedelta = timedelta(days=30)

    # Paying money back: how long a payment gateway outage is retried before the case is
    # handed to Accounting (needs_attention) and its reserved amount released.
    payment_retry_for: timedelta = timedelta(hours=1)

    # Quality Complaints: settlements strictly over this need a manager (Manager
    # Authorization); the follow-up promise; business days the customer has to answer; the
    # lot watch opens a recall review at this many complaints on one lot within the window.
    complaint_settlement_above: Decimal = Decimal("1000.00")
    follow_up_within: timedelta = timedelta(hours=24)
    satisfaction_wait: int = 3
    lot_alert_complaints: int = 3
    lot_alert_window: timedelta = timedelta(days=7)

    # Rush Orders: the fee (per order plus per unit; VIP customers' waived when
    # VIP_RUSH_FEE_WAIVED), the same-day cut-off on the business clock, the carrier's
    # expedited transit in delivery days (weekday numbers it delivers on, 0 = Monday), how
    # long a quote stands (business time), and business days after a missed promise until a
    # supervisor is told (LATE_ESCALATE_AFTER) and until a person takes the case over.
    rush_fee_per_order: Decimal = Decimal("25.00")
    rush_fee_per_item: Decimal = Decimal("5.00")
    vip_rush_fee_waived: bool = True
    rush_same_day_cutoff: time = time(14, 0)
    rush_transit_days: int = 1
    rush_delivery_days: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    rush_accept_within: timedelta = timedelta(hours=2)
    late_escalate_after: int = 2
    late_give_up_after: int = 10

    # Order Cancellations: the reasons offered (free text comes with them), and how long a
    # customer whose order already shipped has to take the return offered instead.
    cancel_reasons: tuple[str, ...] = CancellationRules().reasons
    cancel_offer_wait: timedelta = timedelta(days=3)
    # Order Modifications: business time the customer has to accept a change's quote.
    change_accept_within: timedelta = timedelta(hours=8)
    # Freight claims: a manager strictly over FREIGHT_CLAIM_ABOVE; the carrier followed up
    # every CARRIER_FOLLOW_UP_EVERY until it settles or CARRIER_CLAIM_WAIT passes.
    freight_claim_above: Decimal = Decimal("200.00")
    carrier_follow_up_every: timedelta = timedelta(days=7)
    carrier_claim_wait: timedelta = timedelta(days=30)
    # My work and the case page (starter/api/work.py): where the Temporal Web UI shows a
    # case ("" = the embedded dev server's UI on DEV_SERVER_UI_PORT).
    temporal_ui_url: str = ""

    # Deciding from the email: each approval email's Approve and Reject links open
    # PUBLIC_BASE_URL/decide/... (where approvers reach the API); empty means the API's own
    # address, http://API_HOST:API_PORT.
    public_base_url: str = ""

    # Metrics (docs/metrics.md). The worker serves Temporal's metrics and the product's
    # (casework_*) at http://WORKER_METRICS_HOST:WORKER_METRICS_PORT/metrics (0: none); the
    # pending approvals gauges are read from the database every APPROVALS_GAUGE_EVERY. The
    # API serves its request metrics at its own GET /metrics.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    approvals_gauge_every: timedelta = Field(default=timedelta(seconds=15), gt=timedelta(0))

    # Payload encryption (infra/codec.py, docs/privacy.md). CODEC_KEYS: "id:base64,id2:base64"
    # or a JSON object of 32-byte keys; CODEC_CURRENT_KEY encrypts (default: the last listed),
    # every key listed decrypts. Without CODEC_KEYS the key file CODEC_KEY_FILE (default
    # $VAR_DIR/codec-keys.json, created by `make run`); without either a process refuses to
    # start unless CODEC_DISABLED. CODEC_UI_ORIGINS: the Web UI origins the codec endpoint
    # answers (CORS); default the dev server's UI on DEV_SERVER_UI_PORT.
    codec_keys: SecretStr | None = None
    codec_current_key: str | None = None
    codec_key_file: Path | None = None
    codec_disabled: bool = False
    codec_ui_origins: tuple[str, ...] = ()

    # SLA clocks (docs/sla-clocks.md): the response standards in business time, and public
    # holidays from the `holidays` package for a country (ISO code, "US") and optionally a
    # subdivision ("TX"), added to HOLIDAYS for the years ahead; recorded with each case.
    sla_email_response_within: timedelta = timedelta(hours=2)
    sla_callback_within: timedelta = timedelta(hours=4)
    holidays_country: str | None = None
    holidays_subdivision: str | None = None

    @field_validator("sla_email_response_within", "sla_callback_within")
    @classmethod
    def _positive_sla(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @model_validator(mode="after")
    def _known_holidays(self) -> Settings:
        if self.holidays_country is not None:
            public_holidays(self.holidays_country, self.holidays_subdivision, years=())
        elif self.holidays_subdivision is not None:
            raise ValueError("HOLIDAYS_SUBDIVISION needs HOLIDAYS_COUNTRY")
        return self

    @property
    def public_url(self) -> str:
        return self.public_base_url.rstrip("/") or f"http://{self.api_host}:{self.api_port}"

    @field_validator("satisfaction_wait", "lot_alert_complaints", "late_escalate_after")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator(
        "payment_retry_for",
        "follow_up_within",
        "lot_alert_window",
        "rush_accept_within",
        "cancel_offer_wait",
        "change_accept_within",
        "carrier_follow_up_every",
        "carrier_claim_wait",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator(
        "refund_approval_above",
        "complaint_settlement_above",
        "rush_fee_per_order",
        "rush_fee_per_item",
        "freight_claim_above",
    )
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        if value < 0 or value != value.quantize(Decimal("0.01")):
            raise ValueError("must be a non-negative amount in whole cents")
        return value.quantize(Decimal("0.01"))

    @field_validator("cancel_reasons")
    @classmethod
    def _some_reasons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not reason.strip() for reason in value):
            raise ValueError("must name at least one reason, none blank")
        return value

    @field_validator("rush_transit_days")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("rush_delivery_days")
    @classmethod
    def _delivery_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(day not in range(7) for day in value):
            raise ValueError("must be weekday numbers 0 (Monday) to 6 (Sunday)")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _give_up_after_escalating(self) -> Settings:
        if self.late_give_up_after <= self.late_escalate_after:
            raise ValueError("LATE_GIVE_UP_AFTER must be more than LATE_ESCALATE_AFTER")
        return self

    @property
    def codec_origins(self) -> tuple[str, ...]:
        """The Web UI origins allowed to call the codec endpoint from a browser."""
        port = self.dev_server_ui_port
        return self.codec_ui_origins or (f"http://127.0.0.1:{port}", f"http://localhost:{port}")

    @property
    def calendar(self) -> BusinessCalendar:
        return self.calendar_at(datetime.now(UTC))

    def calendar_at(self, opened_at: datetime) -> BusinessCalendar:
        """The calendar of a case opened at ``opened_at`` (its holidays from that year)."""
        return BusinessCalendar(
            timezone=self.business_timezone,
            opens=self.business_opens,
            closes=self.business_closes,
            workdays=self.business_days,
            holidays=self._holidays(opened_at.year),
        )

    def _holidays(self, year: int) -> tuple[date, ...]:
        """HOLIDAYS, and the country's public holidays from ``year`` to two years ahead
        (a case's longest wait is well inside), resolved as a case opens: it records them."""
        if self.holidays_country is None:
            return self.holidays
        found = public_holidays(
            self.holidays_country, self.holidays_subdivision, years=range(year, year + 3)
        )
        return tuple(sorted({*self.holidays, *found}))

    def case_rules(self, opened_at: datetime | None = None) -> CaseRules:
        """The rules a case opened now (or at ``opened_at``) is held to, for its whole life."""
        return CaseRules(
            currency=self.currency,
            refund_approval_above=self.refund_approval_above,
            calendar=self.calendar_at(opened_at or datetime.now(UTC)),
            approval=ApprovalRules(
                remind_after=self.approval_remind_after,
                escalate_after=self.approval_escalate_after,
                expire_after_days=self.approval_expire_after_days,
                approver_roles=self.approver_roles,
            ),
            return_window=self.return_window,
            return_reminder_after=self.return_reminder_after,
            ra_expires_after=self.ra_expires_after,
            payment_retry_for=self.payment_retry_for,
            complaint=ComplaintRules(
                settlement_above=self.complaint_settlement_above,
                follow_up_within=self.follow_up_within,
                satisfaction_wait_days=self.satisfaction_wait,
                lot_alert_complaints=self.lot_alert_complaints,
                lot_alert_window=self.lot_alert_window,
            ),
            rush=RushRules(
                fee_per_order=self.rush_fee_per_order,
                fee_per_item=self.rush_fee_per_item,
                vip_fee_waived=self.vip_rush_fee_waived,
                same_day_cutoff=self.rush_same_day_cutoff,
                transit_days=self.rush_transit_days,
                delivery_days=self.rush_delivery_days,
                accept_within=self.rush_accept_within,
                late_escalate_after_days=self.late_escalate_after,
                late_give_up_after_days=self.late_give_up_after,
            ),
            cancellation=CancellationRules(
                reasons=self.cancel_reasons, offer_wait=self.cancel_offer_wait
            ),
            order_change=OrderChangeRules(accept_within=self.change_accept_within),
            freight_claim=FreightClaimRules(
                approval_above=self.freight_claim_above,
                follow_up_every=self.carrier_follow_up_every,
                carrier_wait=self.carrier_claim_wait,
            ),
            sla=SlaRules(
                email_response_within=self.sla_email_response_within,
                callback_within=self.sla_callback_within,
            ),
        )


def public_holidays(country: str, subdivision: str | None, *, years: Iterable[int]) -> set[date]:
    """The public holidays of ``country`` (and ``subdivision``) in ``years``, from the
    `holidays` package; ValueError for a country or subdivision it does not know."""
    return set(_public_holidays(country, subdivision, tuple(years)))


@lru_cache(maxsize=16)  # every case opening asks again; the answer is the same all year
def _public_holidays(country: str, subdivision: str | None, years: tuple[int, ...]) -> list[date]:
    try:
        found = country_holidays(country, subdiv=subdivision, years=list(years))
    except NotImplementedError as err:  # how the package says "unknown"
        raise ValueError(f"the holidays package does not know {err}") from err
    return list(found)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
