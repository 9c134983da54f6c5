"""Owner deletion cascades to dependents named by ownerReferences."""

from __future__ import annotations

from shared.models import Cluster, ClusterSpec, Machine, MachineSpec, ObjectMeta
from shared.store import NotFound
from tests.harness import system
from tests.waiting import eventually


async def test_deleting_owner_deletes_dependents_only(nc, prefix):
    async with system(nc, prefix) as h:
        c = await h.store.create(
            Cluster(
                metadata=ObjectMeta(name="c1", namespace="ns"),
                spec=ClusterSpec(region="r1", provider="simulated", release="x"),
            )
        )
        owned = [
            await h.store.create(
                Machine(
                    metadata=ObjectMeta(
                        name=f"m{i}", namespace="ns", owner_references=[c.owner_ref()]
                    ),
                    spec=MachineSpec(cluster="c1", region="r1"),
                )
            )
            for i in range(3)
        ]
        stray = await h.store.create(
            Machine(
                metadata=ObjectMeta(name="other", namespace="ns"),
                spec=MachineSpec(cluster="c2", region="r1"),
            )
        )
        await h.store.delete(Cluster, "c1", "ns")

        async def gone() -> bool:
            left = {m.metadata.name for m in await h.store.list_all(Machine, "ns")}
            return left == {"other"}

        await eventually(gone, what="owned machines collected")
        assert len(owned) == 3
        assert (await h.store.get(Machine, "other", "ns")).metadata.uid == stray.metadata.uid
        try:
            await h.store.get(Cluster, "c1", "ns")
            raise AssertionError("cluster still present")
        except NotFound:
            pass
