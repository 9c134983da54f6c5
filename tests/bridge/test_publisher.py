"""Every committed write yields exactly one bus event, also across a bridge restart: with
the bridge tailing the store (Kubernetes: the only publisher) and with its sweep for
writes nobody announced (the embedded store: writers announce their own)."""

from __future__ import annotations

import msgspec
import pytest

from services.bridge.sweep import SWEPT
from shared import metrics
from shared.bus import ChangeEvent
from shared.models import Cluster, ClusterSpec, ObjectMeta
from tests.harness import bridge, system
from tests.waiting import eventually


def cluster(name: str, region: str = "east") -> Cluster:
    return Cluster(
        metadata=ObjectMeta(name=name, namespace="team-a"),
        spec=ClusterSpec(region=region, provider="simulated", release="mke-3-7-0"),
    )


both_tails = pytest.mark.parametrize("sweep", [False, True], ids=["tail", "sweep"])


def checkpoint_key(sweep: bool) -> str:
    return SWEPT if sweep else "Cluster"


async def stream_events(h) -> list[tuple[str, ChangeEvent]]:
    js = h.nc.jetstream()
    info = await js.stream_info(h.bus.stream)
    out: list[tuple[str, ChangeEvent]] = []
    if not info.state.messages:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(h.bus.stream, seq)
        out.append((msg.subject, msgspec.json.decode(msg.data, type=ChangeEvent)))
    return out


@both_tails
async def test_one_event_per_write_with_region_subjects(nc, prefix, sweep):
    async with system(nc, prefix, sweep=sweep) as h:
        c = await h.store.create(cluster("c1"))
        c.spec.release = "mke-3-7-1"
        c = await h.store.update(c)
        c.status.phase = "Provisioning"
        c = await h.store.update_status(c)
        await h.store.create(cluster("c2", region="west"))
        await h.store.delete(Cluster, "c1", "team-a")

        events = await eventually(
            lambda: _n(stream_events(h), 5), what="5 events on the stream"
        )
        kinds = [(s, e.type, e.name, e.resource_version) for s, e in events]
        assert [k[:3] for k in kinds] == [
            (f"{prefix}.east.cluster.created", "ADDED", "c1"),
            (f"{prefix}.east.cluster.updated", "MODIFIED", "c1"),
            (f"{prefix}.east.cluster.updated", "MODIFIED", "c1"),
            (f"{prefix}.west.cluster.created", "ADDED", "c2"),
            (f"{prefix}.east.cluster.deleted", "DELETED", "c1"),
        ]
        assert len({e.id for _, e in events}) == 5
        assert events[0][1].generation == 1 and events[1][1].generation == 2


async def _n(coro, n: int):
    got = await coro
    return got if len(got) >= n else None


@both_tails
async def test_restarted_bridge_replays_without_duplicates(nc, prefix, sweep):
    async with system(nc, prefix, sweep=sweep) as h:
        for i in range(5):
            await h.store.create(cluster(f"c{i}"))
        await eventually(lambda: _n(stream_events(h), 5), what="first 5 events")
        await h.publisher.stop()
        # Roll the checkpoint back to the start, as if the bridge died before saving it.
        kv = await nc.jetstream().key_value(f"{prefix}-bridge")
        await kv.put(checkpoint_key(sweep), b"0")
        await h.store.create(cluster("c9"))

        replay = bridge(h.store, h.bus, nc, prefix, sweep=sweep)
        await replay.start()
        try:
            await eventually(lambda: replay.published >= 6, what="replay of all writes")
            events = await stream_events(h)
            assert sorted(e.name for _, e in events) == ["c0", "c1", "c2", "c3", "c4", "c9"]
        finally:
            await replay.stop()


async def test_events_carry_no_object_content(nc, prefix):
    from shared.models import OpenStackAuth, OpenStackCredential, OpenStackCredentialSpec

    async with system(nc, prefix) as h:
        cred = OpenStackCredential(
            metadata=ObjectMeta(name="os", namespace="team-a"),
            spec=OpenStackCredentialSpec(
                region="east",
                auth=OpenStackAuth(auth_url="http://x", username="u", password="s3cr3t-pw"),
            ),
        )
        await h.store.create(cred)
        js = nc.jetstream()
        await eventually(
            lambda: _n(stream_events(h), 1), what="credential event"
        )
        msg = await js.get_msg(h.bus.stream, 1)
        assert b"s3cr3t-pw" not in msg.data
        assert msg.subject == f"{prefix}.east.openstackcredential.created"


@both_tails
async def test_bridge_publishes_writes_whose_writer_never_announced(nc, prefix, sweep):
    """A writer that died between commit and publish: the bridge's tail covers it."""
    from shared.store.kv import KVStore

    async with system(nc, prefix, sweep=sweep) as h:
        silent = KVStore(nc, bucket=h.settings.objects_bucket)  # no commit hook
        await silent.start()
        await silent.create(cluster("quiet"))
        events = await eventually(lambda: _n(stream_events(h), 1), what="bridge event")
        assert [(e.type, e.name) for _, e in events] == [("ADDED", "quiet")]


@both_tails
async def test_a_burst_of_unannounced_writes_is_published_whole_and_in_order(
    nc, prefix, sweep, monkeypatch
):
    """A burst's events all leave, its last one too, and in store order (the sweep reading
    it a few writes per look)."""
    from services.bridge import sweep as sweeping
    from shared.store.kv import KVStore

    monkeypatch.setattr(sweeping, "WRITES_PER_LOOK", 4)

    async with system(nc, prefix, sweep=sweep) as h:
        silent = KVStore(nc, bucket=h.settings.objects_bucket)  # no commit hook
        await silent.start()
        try:
            written = [await silent.create(cluster(f"b{i}")) for i in range(25)]
            events = await eventually(lambda: _n(stream_events(h), 25), what="25 events")
            assert [(e.name, e.resource_version) for _, e in events] == [
                (c.metadata.name, c.metadata.resource_version) for c in written]
            last = written[-1].metadata.resource_version
            await eventually(lambda: h.publisher.position("Cluster") == last,
                             what="resume point at the burst's last write")
        finally:
            await silent.close()


@both_tails
async def test_an_expired_checkpoint_is_caught_up_from_a_list(nc, prefix, sweep):
    """The bridge was away while an unannounced object changed more often than the store
    keeps history for. The tail's resume point is Gone and it publishes the latest state
    from a list; the sweep publishes the writes the store still holds, the last among them."""
    from shared.store.kv import HISTORY, KVStore

    async with system(nc, prefix, sweep=sweep) as h:
        start = (await h.store.create(cluster("seen"))).metadata.resource_version
        await eventually(lambda: _n(stream_events(h), 1), what="first event")
        await h.publisher.stop()
        kv = await nc.jetstream().key_value(f"{prefix}-bridge")
        await kv.put(checkpoint_key(sweep), start.encode())
        silent = KVStore(nc, bucket=h.settings.objects_bucket)  # no commit hook
        await silent.start()
        quiet = await silent.create(cluster("quiet"))
        for i in range(HISTORY + 1):
            quiet.metadata.labels = {"n": str(i)}
            quiet = await silent.update(quiet)

        replay = bridge(h.store, h.bus, nc, prefix, sweep=sweep)
        await replay.start()
        try:
            last = quiet.metadata.resource_version
            kept = [str(int(last) - i) for i in reversed(range(HISTORY))] if sweep else [last]
            events = await eventually(lambda: _n(stream_events(h), 1 + len(kept)),
                                      what="caught-up events")
            assert [(e.type, e.name, e.resource_version) for _, e in events] == [
                ("ADDED", "seen", start),
                *(("MODIFIED", "quiet", rv) for rv in kept),
            ]
            # It follows on: a later write is published once, as usual.
            await silent.delete(Cluster, "quiet", "team-a")
            events = await eventually(lambda: _n(stream_events(h), 2 + len(kept)),
                                      what="delete event")
            assert [(e.type, e.name) for _, e in events][1 + len(kept):] == [("DELETED", "quiet")]
        finally:
            await replay.stop()
            await silent.close()


async def test_both_copies_of_a_write_carry_one_event_id_and_trace_id(nc, prefix):
    """The writer announces a write and the bridge's tail republishes it: a subscriber
    seeing both copies sees the same event id and trace id; the stream keeps one."""
    async with system(nc, prefix, sweep=False) as h:
        copies: list[ChangeEvent] = []

        async def seen(msg) -> None:
            copies.append(msgspec.json.decode(msg.data, type=ChangeEvent))

        sub = await nc.subscribe(f"{prefix}.>", cb=seen)
        try:
            c = await h.store.create(cluster("traced"))
            c.spec.release = "mke-3-7-1"
            c = await h.store.update(c)
            await eventually(lambda: len(copies) >= 4, what="announce + republish of 2 writes")
        finally:
            await sub.unsubscribe()
        by_id: dict[str, set[str]] = {}
        for ev in copies:
            by_id.setdefault(ev.id, set()).add(ev.trace_id)
        assert len(by_id) == 2 and all(len(t) == 1 for t in by_id.values()), copies
        traces = {next(iter(t)) for t in by_id.values()}
        assert len(traces) == 2  # one trace per write, not per kind or object
        assert all(len(t) == 32 for t in traces)
        stored = await eventually(lambda: _n(stream_events(h), 2), what="stream events")
        first = {e.type: (e.id, e.trace_id) for e in reversed(copies)}
        assert [(e.id, e.trace_id) for _, e in stored] == [first["ADDED"], first["MODIFIED"]]


async def test_global_kinds_travel_under_the_global_region_token(nc, prefix):
    """Releases belong to no region: ``<prefix>.global.<kind>.<verb>``. A Region's own
    events travel under its name (docs/api.md), so a region's services hear of it."""
    from shared.models import (
        ClusterRelease,
        ClusterReleaseSpec,
        KaaSRelease,
        KaaSReleaseSpec,
        Region,
        RegionSpec,
    )

    async with system(nc, prefix) as h:
        cr = await h.store.create(ClusterRelease(
            metadata=ObjectMeta(name="mke-3-7-0"),
            spec=ClusterReleaseSpec(version="3.7.0", mke_version="3.7.0")))
        await h.store.create(KaaSRelease(metadata=ObjectMeta(name="kaas-1-0-0"),
                                         spec=KaaSReleaseSpec(version="1.0.0")))
        await h.store.create(Region(metadata=ObjectMeta(name="east"),
                                    spec=RegionSpec(providers=["simulated"])))
        await h.store.delete(ClusterRelease, cr.metadata.name)
        events = await eventually(lambda: _n(stream_events(h), 4), what="4 events")
        assert [(s, e.region) for s, e in events] == [
            (f"{prefix}.global.clusterrelease.created", "global"),
            (f"{prefix}.global.kaasrelease.created", "global"),
            (f"{prefix}.east.region.created", "east"),
            (f"{prefix}.global.clusterrelease.deleted", "global"),
        ]


@both_tails
async def test_an_event_the_stream_did_not_take_is_resent_and_never_checkpointed(
    nc, prefix, sweep
):
    """Sends are pipelined (acks not awaited one by one): a write whose event was refused
    keeps the resume point before it, and is published once the stream takes events again."""
    from shared.store.kv import KVStore

    async with system(nc, prefix, sweep=sweep) as h:
        first = await h.store.create(cluster("first"))
        await eventually(lambda: h.publisher.position("Cluster") == first.metadata.resource_version,
                         what="resume point at the first write")
        await nc.jetstream().delete_stream(h.bus.stream)
        silent = KVStore(nc, bucket=h.settings.objects_bucket)  # no commit hook
        await silent.start()
        try:
            lost = await silent.create(cluster("lost"))
            await eventually(lambda: h.publisher.resends >= 2, what="the refused send retried")
            assert h.publisher.position("Cluster") == first.metadata.resource_version

            await h.bus.start()  # the stream is back, empty
            events = await eventually(lambda: _n(stream_events(h), 1), what="resent event")
            assert [(e.type, e.name, e.resource_version) for _, e in events] == [
                ("ADDED", "lost", lost.metadata.resource_version)]
            await eventually(
                lambda: h.publisher.position("Cluster") == lost.metadata.resource_version,
                what="resume point past the resent write")
        finally:
            await silent.close()


async def test_the_sweep_publishes_only_what_nobody_announced(nc, prefix):
    """Where writers announce, the bridge sends nothing for their writes (no second copy
    for the stream to drop) and one event for the write of a writer that never did."""
    from shared.store.kv import KVStore

    async with system(nc, prefix) as h:
        copies: list[ChangeEvent] = []

        async def seen(msg) -> None:
            copies.append(msgspec.json.decode(msg.data, type=ChangeEvent))

        found = metrics.BRIDGE_UNANNOUNCED.labels("Cluster")._value.get()
        sub = await nc.subscribe(f"{prefix}.>", cb=seen)
        silent = KVStore(nc, bucket=h.settings.objects_bucket)  # no commit hook
        await silent.start()
        try:
            a = await h.store.create(cluster("a"))
            b = await silent.create(cluster("b"))
            c = await h.store.create(cluster("c"))
            last = c.metadata.resource_version
            await eventually(lambda: h.publisher.position("Cluster") == last,
                             what="the sweep past the last write")
            await nc.flush()
        finally:
            await sub.unsubscribe()
            await silent.close()
        assert sorted((e.name, e.resource_version) for e in copies) == [
            (o.metadata.name, o.metadata.resource_version) for o in (a, b, c)]
        assert h.publisher.published == 1
        assert metrics.BRIDGE_UNANNOUNCED.labels("Cluster")._value.get() - found == 1
        stored = await stream_events(h)
        assert sorted(e.name for _, e in stored) == ["a", "b", "c"]


async def test_a_write_announced_late_is_left_to_its_writer(nc, prefix):
    """A busy writer may announce a while after its commit: the sweep judges a write only
    once it read it ``grace`` ago, so an announce landing between two looks sends no copy and
    counts no dead writer, while a write still unannounced then gets its event. The looks
    are driven by hand; a large grace stands for a write read a moment ago."""
    from services.bridge.sweep import AnnouncedSweep
    from shared.bus import event_for
    from shared.store.kv import KVStore

    async with system(nc, prefix) as h:
        await h.publisher.stop()  # this test's own sweep, looked through by hand
        sweep = AnnouncedSweep(h.store, h.bus, nc, checkpoint_bucket=f"{prefix}-by-hand",
                               interval=3600, grace=3600)
        await sweep.start()
        silent = KVStore(nc, bucket=h.settings.objects_bucket)  # no commit hook
        await silent.start()
        found = metrics.BRIDGE_UNANNOUNCED.labels("Cluster")._value.get()
        try:
            late = await silent.create(cluster("late"))
            dead = await silent.create(cluster("dead"))
            await sweep.sweep()  # reads both
            await sweep.sweep()  # a look later, both still within the grace
            assert sweep.published == 0
            assert sweep.position("Cluster") is None
            await h.bus.publish(event_for("ADDED", late))  # its writer's announce, late
            sweep.grace = 0  # both read long enough ago now
            await sweep.sweep()
        finally:
            await silent.close()
            await sweep.stop()
        assert sweep.published == 1
        assert sweep.position("Cluster") == dead.metadata.resource_version
        assert metrics.BRIDGE_UNANNOUNCED.labels("Cluster")._value.get() - found == 1
        stored = sorted((e.name, e.resource_version) for _, e in await stream_events(h))
        assert stored == [("dead", dead.metadata.resource_version),
                          ("late", late.metadata.resource_version)]


async def test_an_event_stream_of_an_earlier_version_is_opened_to_direct_reads(nc, prefix):
    """The sweep reads the event stream with direct gets: a stream made before it (no
    direct access) is updated when the bus starts, its events kept."""
    from nats.js import api

    from shared.bus import Bus
    from shared.bus.events import stream_name

    js = nc.jetstream()
    await js.add_stream(api.StreamConfig(name=stream_name(prefix), subjects=[f"{prefix}.>"]))
    await js.publish(f"{prefix}.east.cluster.created", b"{}")
    assert not (await js.stream_info(stream_name(prefix))).config.allow_direct
    await Bus(nc, prefix=prefix).start()
    info = await js.stream_info(stream_name(prefix))
    assert info.config.allow_direct and info.state.messages == 1
