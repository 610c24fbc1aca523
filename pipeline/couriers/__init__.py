"""The courier registry: one line per courier, mapping its name to how the adapter (pure) and
its client (the I/O step) are built from settings."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.couriers.base import Courier
from pipeline.couriers.client import CourierClient, TrackingClient
from pipeline.couriers.easyparcel import EasyParcel
from pipeline.couriers.fake import FakeCourier, FakeCourierClient

if TYPE_CHECKING:
    from settings import Settings


@dataclass(frozen=True)
class CourierEntry:
    """How to build one courier's adapter and client from the settings."""

    build_courier: Callable[[Settings], Courier]
    build_client: Callable[[Settings], TrackingClient]


def _easyparcel(config: Settings) -> EasyParcel:
    return EasyParcel(api=config.easyparcel_api, base_url=config.courier_base_url,
                      api_version=config.easyparcel_api_version, timezone=config.easyparcel_timezone)


def _easyparcel_client(config: Settings) -> CourierClient:
    return CourierClient(
        _easyparcel(config),
        client_id=config.easyparcel_client_id,
        client_secret=config.easyparcel_client_secret.reveal(),
        api_key=config.easyparcel_api_key.reveal(),
        timeout_seconds=config.api_timeout_seconds,
    )


COURIERS: dict[str, CourierEntry] = {
    "easyparcel": CourierEntry(_easyparcel, _easyparcel_client),
    "fake": CourierEntry(lambda config: FakeCourier(), lambda config: FakeCourierClient()),
}


# Couriers meant for tests: available only when TRACKING_ENABLE_TEST_COURIERS is on.
TEST_COURIERS = frozenset({"fake"})


def courier_names() -> list[str]:
    """Names of the registered couriers, sorted."""
    return sorted(COURIERS)


def available_couriers(config: Settings) -> list[str]:
    """Couriers these settings accept (registrations, webhooks): every registered one except the
    test couriers, which need TRACKING_ENABLE_TEST_COURIERS."""
    return [name for name in courier_names() if name not in TEST_COURIERS or config.enable_test_couriers]


def _entry(name: str) -> CourierEntry:
    try:
        return COURIERS[name]
    except KeyError:
        raise ValueError(f"unknown courier {name!r}; known: {', '.join(courier_names())}") from None


def build_courier(name: str, config: Settings) -> Courier:
    """The named courier's adapter, configured from the settings.

    Raises:
        ValueError: no courier has that name.
    """
    return _entry(name).build_courier(config)


def build_client(name: str, config: Settings) -> TrackingClient:
    """The named courier's client (the I/O step), configured from the settings.

    Raises:
        ValueError: no courier has that name.
    """
    return _entry(name).build_client(config)
