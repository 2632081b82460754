"""The Temporal connection every process shares: address, converter, search attributes.

``DATA_CONVERTER`` is the one converter of every client and worker (pydantic v2 models,
Decimal and datetime round-trip exactly), with every payload encrypted by the configured keys
(infra/codec.py): a client built any other way would write customer data in clear.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import MetricMeter, SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from infra.codec import ConfiguredCodec, codec_for
from settings import get_settings


def data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    """The pydantic converter with ``codec`` (default: the configured keys, looked up when
    first used). Every client and worker goes through here; tests pass a codec of their own
    keys to play a rotation."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec or ConfiguredCodec())


DATA_CONVERTER = data_converter()


def temporal_address() -> str:
    """Where ``connect()`` dials: TEMPORAL_ADDRESS (or a profile's address) when configured,
    else the embedded dev server of ``make run`` on DEV_SERVER_PORT."""
    configured = ClientConfig.load_client_connect_config().get("target_host")
    return configured or f"127.0.0.1:{get_settings().dev_server_port}"


async def connect(
    address: str | None = None, namespace: str | None = None, runtime: Runtime | None = None
) -> Client:
    """Connect with Temporal's standard environment configuration (TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY or a TOML profile); without one, to
    the dev server of ``make run`` (DEV_SERVER_PORT). ``runtime`` (``prometheus_runtime``)
    carries the metrics of the client and of every worker built on it."""
    config = ClientConfig.load_client_connect_config()
    config["target_host"] = address or temporal_address()
    if namespace:
        config["namespace"] = namespace
    client = await Client.connect(**config, data_converter=DATA_CONVERTER, runtime=runtime)
    codec_for(get_settings())  # no keys: refuse now (CodecKeyError), not at the first case
    return client


def prometheus_runtime(
    host: str, port: int, histogram_buckets: Mapping[str, Sequence[float]] | None = None
) -> Runtime:
    """A Temporal runtime serving its metrics (the SDK's and those recorded through its
    meters) at ``http://host:port/metrics``. Create one per process: each binds its port
    (ValueError when the port is taken)."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"{host}:{port}",
                histogram_bucket_overrides=dict(histogram_buckets or {}),
            )
        )
    )


def metric_meter(client: Client) -> MetricMeter:
    """The meter of ``client``'s runtime: what is recorded on it is served with the worker's
    metrics (a no-op meter when the runtime exports none)."""
    return (client.service_client.config.runtime or Runtime.default()).metric_meter


async def register_search_attributes(
    client: Client, keys: Iterable[SearchAttributeKey[Any]]
) -> None:
    """Register the case search attributes on the namespace; existing ones are kept."""
    for key in keys:
        request = AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type)},
        )
        try:
            await client.operator_service.add_search_attributes(request)
        except RPCError as err:
            if err.status is not RPCStatusCode.ALREADY_EXISTS:
                raise
