"""The hosts' traffic (manager/traffic.py): the difference of two samples, restarts, the compare-and-set that keeps
two managers on one database from counting the same bytes twice, and the analysis API over what was recorded."""

from __future__ import annotations

import asyncio
import csv
import io
import time

import pytest
from sqlalchemy import select

from manager import migrate
from manager.config import ManagerConfig
from manager.database import create_engine, database_url, session_factory
from manager.host_source import SchedulerSource
from manager.hosts import HostBook
from manager.models import TrafficHour
from manager.traffic import (
    HOUR,
    Conflict,
    Counters,
    TrafficRecorder,
    difference,
    series,
    stored_counters,
    totals_by_host,
    write_sample,
)
from supernode.api import HostFacts
from supernode.scheduler import Scheduler
from tests.manager.conftest import Running


def test_the_first_sample_of_a_host_counts_everything_it_moved_since_its_daemon_started() -> None:
    assert difference(None, Counters(10, 20, 30, 40)) == Counters(10, 20, 30, 40)


def test_a_later_sample_counts_what_moved_since_the_last() -> None:
    assert difference(Counters(10, 20, 30, 40), Counters(15, 20, 31, 50)) == Counters(5, 0, 1, 10)


def test_a_counter_that_went_down_means_a_restart_and_the_new_values_are_the_difference() -> None:
    # Only one counter lower: the daemon restarted all of them, so all four are taken as they are.
    assert difference(Counters(100, 200, 300, 400), Counters(7, 250, 0, 0)) == Counters(7, 250, 0, 0)


def test_saved_ratio_is_the_share_fetched_from_peers() -> None:
    assert Counters(fetched_upstream=100, fetched_peers=300).saved_ratio == 0.75
    assert Counters(served_peers=5).saved_ratio is None


async def test_two_managers_sampling_one_host_count_its_bytes_once(manager_config: ManagerConfig) -> None:
    engine = create_engine(database_url(manager_config.database, manager_config.data_dir))
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        at = 1_700_000_000.0
        async with sessions.begin() as session:
            assert await write_sample(session, "h1", None, Counters(100, 0, 0, 0), at) == Counters(100, 0, 0, 0)
        # Both managers read the same counters...
        async with sessions() as session:
            first_read = (await stored_counters(session))["h1"]
        async with sessions() as session:
            second_read = (await stored_counters(session))["h1"]
        # ...the first writes its sample; the second's compare-and-set finds them changed, and adds nothing.
        async with sessions.begin() as session:
            await write_sample(session, "h1", first_read, Counters(150, 10, 0, 0), at + 60)
        with pytest.raises(Conflict):
            async with sessions.begin() as session:
                await write_sample(session, "h1", second_read, Counters(150, 10, 0, 0), at + 61)
        # A new host both saw first: the second insert is the conflict.
        async with sessions.begin() as session:
            await write_sample(session, "h2", None, Counters(1, 2, 3, 4), at)
        with pytest.raises(Conflict):
            async with sessions.begin() as session:
                await write_sample(session, "h2", None, Counters(1, 2, 3, 4), at)
        assert await totals_by_host(sessions) == {"h1": Counters(150, 10, 0, 0), "h2": Counters(1, 2, 3, 4)}
        async with sessions() as session:
            hours = list((await session.execute(select(TrafficHour.hour).distinct())).scalars())
        assert hours == [int(at // HOUR * HOUR)]
    finally:
        await engine.dispose()


async def _record(platform: Running, host: str, counters: Counters, at: float) -> None:
    sessions = platform.app.platform.sessions  # type: ignore[union-attr]
    async with sessions() as session:
        last = (await stored_counters(session)).get(host)
    async with sessions.begin() as session:
        await write_sample(session, host, last, counters, at)


async def test_the_series_sums_hours_into_days_and_fills_the_empty_ones(platform: Running) -> None:
    now = time.time()
    await _record(platform, "a", Counters(100, 0, 0, 0), now - 3 * HOUR)
    await _record(platform, "b", Counters(0, 300, 0, 0), now - 2 * HOUR)
    await _record(platform, "a", Counters(100, 100, 0, 0), now)
    sessions = platform.app.platform.sessions  # type: ignore[union-attr]
    hourly = await series(sessions, now - 4 * HOUR, "hour", None, now)
    assert len(hourly) == 5 and hourly[0][1] == Counters()
    assert sum((c for _, c in hourly), Counters()) == Counters(100, 400, 0, 0)
    only_a = await series(sessions, now - 4 * HOUR, "hour", ["a"], now)
    assert sum((c for _, c in only_a), Counters()) == Counters(100, 100, 0, 0)
    daily = await series(sessions, now - 4 * HOUR, "day", None, now)
    assert 1 <= len(daily) <= 2 and sum((c for _, c in daily), Counters()) == Counters(100, 400, 0, 0)


async def test_the_analysis_api_answers_json_csv_and_prometheus(platform: Running) -> None:
    now = time.time()
    await _record(platform, "host-a", Counters(1000, 3000, 500, 4000), now)
    admin = await platform.admin()
    answer = await platform.http.get("/api/v1/analysis/traffic", params={"since": "2h"}, headers=admin)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["step"] == "hour" and len(body["series"]) in (2, 3)
    assert body["totals"] == {"fetched_upstream": 1000, "fetched_peers": 3000, "served_peers": 500,
                              "served_clients": 4000, "saved_ratio": 0.75}
    assert body["series"][-1]["start"].endswith(":00:00Z")

    text = await platform.http.get("/api/v1/analysis/traffic", params={"since": "2h", "format": "csv"},
                                   headers=admin)
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text.text)))
    assert rows[0] == ["start", "fetched_upstream", "fetched_peers", "served_peers", "served_clients",
                       "saved_ratio"]
    assert rows[-1][1:] == ["1000", "3000", "500", "4000", "0.75"]
    assert all(row[5] == "" for row in rows[1:-1])

    metrics = await platform.http.get("/api/v1/analysis/metrics", headers=admin)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'damselfly_host_fetched_peers_bytes_total{host="host-a"} 3000' in metrics.text.splitlines()
    assert "# TYPE damselfly_host_served_clients_bytes_total counter" in metrics.text


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"since": "forever"}, 400, "since: expected a duration like 30d, 12h or 90m, got 'forever'"),
        ({"since": "400d"}, 400, "since: between 1 second and 366 days"),
        ({"step": "week"}, 400, "step must be one of hour, day"),
        ({"format": "xml"}, 400, "format must be json or csv"),
        ({"cluster": "a", "host": "b"}, 400, "give cluster or host, not both"),
        ({"cluster": "nope"}, 404, "no cluster 'nope'"),
        ({"host": "nope"}, 404, "no host 'nope'"),
    ],
)
async def test_bad_queries_are_refused_in_the_apis_shape(
    sqlite_platform: Running, query: dict[str, str], status: int, message: str
) -> None:
    answer = await sqlite_platform.http.get("/api/v1/analysis/traffic", params=query,
                                            headers=await sqlite_platform.admin())
    assert answer.status_code == status
    assert answer.json()["message"] == message


async def test_the_recorder_samples_the_live_hosts_across_a_restart_and_two_recorders_count_once(
    platform: Running,
) -> None:
    """Two recorders (two managers) on one database and one scheduler: each sample's bytes are added once, and a
    daemon restart (counters back near 0) adds its new counters, not a negative difference."""
    scheduler = Scheduler()
    book = HostBook(SchedulerSource(scheduler), platform.config)
    sessions = platform.app.platform.sessions  # type: ignore[union-attr]
    recorders = [TrafficRecorder(book, sessions, 60.0) for _ in range(2)]

    def beat(upstream: int, peers: int) -> None:
        scheduler.register("h1", "http://10.0.0.1:65002", {}, time.monotonic(),
                           host=HostFacts(fetched_upstream=upstream, fetched_peers=peers))

    beat(1000, 0)
    assert sorted(await asyncio.gather(*(r.sample() for r in recorders))) == [0, 1]
    beat(1000, 500)
    assert [await r.sample() for r in recorders] == [1, 0]
    beat(10, 20)  # restarted
    assert await recorders[1].sample() == 1
    assert await totals_by_host(sessions) == {"h1": Counters(1010, 520, 0, 0)}
