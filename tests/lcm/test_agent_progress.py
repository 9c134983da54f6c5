"""Progress reports are paced: fast items ride on one report, a slow item shows Running
within the progress interval, a failure is reported at once (each report is a store write
that wakes two controllers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from services.lcm.agent.executor import NodeRootExecutor
from services.lcm.agent.runner import Agent
from services.lcm.wire import AgentReport, DetailItem, MachineDetails
from shared.models import StateItem
from tests.waiting import eventually

ITEMS = ["host-prepare", "container-runtime", "mke-images", "mke-join", "addons"]


class RecordingClient:
    """The agent's side of the endpoint, keeping every report it is sent."""

    def __init__(self) -> None:
        self.reports: list[AgentReport] = []

    async def report(self, report: AgentReport) -> bool:
        # As sent on the wire: the agent goes on changing its item dict afterwards.
        self.reports.append(msgspec.json.decode(msgspec.json.encode(report), type=AgentReport))
        return True

    def states(self) -> list[dict[str, str]]:
        return [{k: v.state for k, v in r.items.items()} for r in self.reports]


def details() -> MachineDetails:
    return MachineDetails(
        namespace="ns", name="m-0", cluster="c", role="worker", release="r1",
        items=[DetailItem(item=StateItem(name=n, phase="deploy", version="1",
                                         params={"path": f"etc/items/{n}", "content": n}),
                          hash=f"h-{n}")
               for n in ITEMS],
    )


def make_agent(root: Path, progress_interval: float) -> tuple[RecordingClient, Agent]:
    client = RecordingClient()
    agent = Agent(client, NodeRootExecutor(root, hostname="m-0"), root,  # type: ignore[arg-type]
                  poll_interval=1.0, progress_interval=progress_interval)
    return client, agent


async def test_fast_items_ride_on_one_report(tmp_path: Path) -> None:
    client, agent = make_agent(tmp_path, progress_interval=30.0)
    await agent.step(details())
    # One report: the pass's outcome, carrying the node's facts.
    assert client.states() == [dict.fromkeys(ITEMS, "Done")]
    assert client.reports[0].hostname == "m-0"
    await agent.step(details())  # nothing changed: nothing sent
    assert len(client.reports) == 1


async def test_a_slow_item_shows_running_within_the_interval(tmp_path: Path) -> None:
    client, agent = make_agent(tmp_path, progress_interval=0.3)
    hold = tmp_path / "etc/ccloud/hold/mke-images"
    hold.parent.mkdir(parents=True)
    hold.write_text("")
    step = asyncio.create_task(agent.step(details()))
    await eventually(lambda: any(s.get("mke-images") == "Running" for s in client.states()),
                     timeout=10, what="mke-images reported Running")
    running = next(s for s in client.states() if s.get("mke-images") == "Running")
    # Items finished before it are in the same report.
    assert running["host-prepare"] == running["container-runtime"] == "Done"
    assert not step.done()
    hold.unlink()
    await asyncio.wait_for(step, 10)
    assert client.states()[-1] == dict.fromkeys(ITEMS, "Done")


async def test_a_failure_is_reported_at_once(tmp_path: Path) -> None:
    client, agent = make_agent(tmp_path, progress_interval=30.0)
    fail = tmp_path / "etc/ccloud/fail/mke-join"
    fail.parent.mkdir(parents=True)
    fail.write_text("join refused")
    await agent.step(details())
    last = client.reports[-1].items
    assert last["mke-join"].state == "Failed" and last["mke-join"].message == "join refused"
    assert last["mke-images"].state == "Done" and last["addons"].state == "Pending"
    assert len(client.reports) == 1  # the failure, with the facts; no per-item chatter


async def test_interval_zero_reports_every_item(tmp_path: Path) -> None:
    client, agent = make_agent(tmp_path, progress_interval=0.0)
    await agent.step(details())
    # One report per finished item (these finish before a Running is due).
    done = [sum(v == "Done" for v in s.values()) for s in client.states()]
    assert done == list(range(1, len(ITEMS) + 1)), client.states()


async def test_the_agent_paces_itself_by_the_endpoints_interval(tmp_path: Path) -> None:
    """With no interval of its own (a node's agent) the agent takes the one the details
    carry: a large region's endpoint asks for fewer reports, each a store write."""
    chatty, quiet = RecordingClient(), RecordingClient()
    for client, interval in ((chatty, 0.0), (quiet, 30.0)):
        root = tmp_path / str(interval)
        agent = Agent(client, NodeRootExecutor(root, hostname="m-0"), root,  # type: ignore[arg-type]
                      poll_interval=1.0)
        await agent.step(msgspec.structs.replace(details(), progress_interval=interval))
    assert len(chatty.reports) == len(ITEMS)  # one per finished item
    assert len(quiet.reports) == 1  # the pass's outcome only


def test_the_endpoint_tells_agents_its_progress_interval() -> None:
    from services.lcm.config import LCMSettings
    from services.lcm.endpoint import details_of
    from shared.models import LCMMachine, LCMMachineSpec, ObjectMeta

    lm = LCMMachine(metadata=ObjectMeta(name="m", namespace="d"),
                    spec=LCMMachineSpec(cluster="c", machine="m", region="r"))
    settings = LCMSettings.from_env({"CCLOUD_LCM_PROGRESS_INTERVAL": "10"})
    assert details_of(lm, settings).progress_interval == 10.0
    assert details_of(lm, LCMSettings()).progress_interval == 1.0
