"""Cron schedules, new-data triggers and availability windows."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from amml._exceptions import ConfigurationError
from amml.federated.schedule import AvailabilityWindow, Cron, Schedule


def test_cron_fields_steps_ranges_and_lists() -> None:
    cron = Cron.parse("0,30 */6 1-7 * 0")  # Sundays in the first week, every 6 h, :00 and :30
    assert cron.matches(datetime(2026, 11, 1, 6, 30))  # a Sunday
    assert not cron.matches(datetime(2026, 11, 1, 7, 30))  # hour not a multiple of 6
    assert not cron.matches(datetime(2026, 11, 8, 6, 30))  # day 8
    assert not cron.matches(datetime(2026, 11, 2, 6, 30))  # a Monday


def test_cron_next_after_skips_to_the_next_match() -> None:
    assert Cron.parse("15 3 * * *").next_after(datetime(2026, 1, 1, 3, 15)) == \
        datetime(2026, 1, 2, 3, 15)


@pytest.mark.parametrize("expression", ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *"])
def test_bad_cron_is_a_clear_error(expression: str) -> None:
    with pytest.raises(ConfigurationError, match="cron expression"):
        Cron.parse(expression)


def test_new_rows_trigger_needs_enough_clients_with_enough_rows() -> None:
    schedule = Schedule(min_new_rows=24, min_clients=2)
    assert not schedule.due(new_rows={"a": 30, "b": 23})
    assert schedule.due(new_rows={"a": 30, "b": 24})
    assert not schedule.due(new_rows={})


def test_cron_schedule_is_due_when_the_clock_matches() -> None:
    schedule = Schedule(cron="0 * * * *")
    assert schedule.due(now=datetime(2026, 1, 1, 5, 0))
    assert not schedule.due(now=datetime(2026, 1, 1, 5, 1))


def test_a_schedule_needs_a_trigger() -> None:
    with pytest.raises(ValueError, match="cron' or 'min_new_rows"):
        Schedule()


def test_availability_windows_including_past_midnight() -> None:
    day = AvailabilityWindow.parse("08:00-18:00")
    night = AvailabilityWindow.parse("22:00-06:00")
    assert day.contains(time(12)) and not day.contains(time(19))
    assert night.contains(time(23)) and night.contains(time(5)) and not night.contains(time(12))
    with pytest.raises(ConfigurationError, match="HH:MM-HH:MM"):
        AvailabilityWindow.parse("8-18h")


def test_a_client_outside_its_window_declines_to_train(tmp_path) -> None:
    from amml.federated.client import ClientIdentity, ClientUnavailable

    me = ClientIdentity.from_node_config({"client": "a", "home": str(tmp_path),
                                          "available": "22:00-06:00", "params.path": "a.csv"})
    assert me.params == {"path": "a.csv"}
    me.check_available(datetime(2026, 1, 1, 23, 0))  # inside: nothing happens
    with pytest.raises(ClientUnavailable, match="outside its availability window"):
        me.check_available(datetime(2026, 1, 1, 12, 0))
    with pytest.raises(ConfigurationError, match="'client' and 'home'"):
        ClientIdentity.from_node_config({"params.path": "a.csv"})
