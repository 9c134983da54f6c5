"""Where the simulated provider keeps its nodes: in memory, or in a JetStream KV bucket.

With the KV bucket a restarted service finds the nodes it made, exactly like a real
cloud would still have them. ``create`` is atomic in both (KV ``create`` fails if the key
exists), which is what makes the simulated ``create`` idempotent under concurrency.
"""

from __future__ import annotations

import abc
import asyncio

import msgspec
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import (
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)

from shared.natsutil import open_bucket


def nodes_bucket(prefix: str) -> str:
    """The KV bucket of a region's simulated nodes (its provider and its node launcher)."""
    return f"{prefix}-simulated-nodes"


class SimNode(msgspec.Struct, kw_only=True):
    id: str
    name: str
    machine_uid: str
    flavor: str = "small"
    created_at: float
    ready_at: float
    power: str = "Off"  # "On" | "Off"
    power_target: str = ""  # requested, applied at power_at
    power_at: float = 0.0
    graceful: bool = False  # the pending off asks the OS to shut down
    addresses: list[str] = msgspec.field(default_factory=list)
    deleting_at: float = 0.0
    # The cloud-init user data the node was made with (its LCM agent's endpoint, Machine
    # and token), kept as a cloud keeps an instance's: what boots the node reads it.
    user_data: str = ""


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(SimNode)


class NodeTable(abc.ABC):
    @abc.abstractmethod
    async def get(self, uid: str) -> SimNode | None: ...

    @abc.abstractmethod
    async def create(self, node: SimNode) -> SimNode:
        """Insert; if one exists for the uid, return that one instead."""

    @abc.abstractmethod
    async def put(self, node: SimNode) -> None: ...

    @abc.abstractmethod
    async def remove(self, uid: str) -> None: ...

    @abc.abstractmethod
    async def all(self) -> list[SimNode]: ...


class MemoryNodes(NodeTable):
    def __init__(self) -> None:
        self._nodes: dict[str, SimNode] = {}
        self._lock = asyncio.Lock()

    async def get(self, uid: str) -> SimNode | None:
        return self._nodes.get(uid)

    async def create(self, node: SimNode) -> SimNode:
        async with self._lock:
            return self._nodes.setdefault(node.machine_uid, node)

    async def put(self, node: SimNode) -> None:
        self._nodes[node.machine_uid] = node

    async def remove(self, uid: str) -> None:
        self._nodes.pop(uid, None)

    async def all(self) -> list[SimNode]:
        return list(self._nodes.values())


class KVNodes(NodeTable):
    """Nodes in a KV bucket keyed by machine uid; the caller owns the connection."""

    def __init__(self, nc: NATS, *, bucket: str = "ccloud-simulated-nodes") -> None:
        self._js = nc.jetstream()
        self.bucket = bucket
        self._kv = None

    async def start(self) -> None:
        self._kv = await open_bucket(
            self._js,
            # Direct gets: the provider reads its nodes on every poll, and a direct get is the
            # raw message where the JetStream API answers in JSON with a base64 body.
            api.KeyValueConfig(bucket=self.bucket, history=1, storage=api.StorageType.FILE,
                               direct=True),
        )

    @property
    def kv(self):  # noqa: ANN201 - nats-py's KeyValue
        if self._kv is None:
            raise RuntimeError("KVNodes.start() was not called")
        return self._kv

    async def get(self, uid: str) -> SimNode | None:
        try:
            entry = await self.kv.get(uid)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return _dec.decode(entry.value) if entry.value else None

    async def create(self, node: SimNode) -> SimNode:
        try:
            await self.kv.create(node.machine_uid, _enc.encode(node))
            return node
        except KeyWrongLastSequenceError:
            existing = await self.get(node.machine_uid)
            return existing or node

    async def put(self, node: SimNode) -> None:
        await self.kv.put(node.machine_uid, _enc.encode(node))

    async def remove(self, uid: str) -> None:
        await self.kv.purge(uid)

    async def all(self) -> list[SimNode]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        nodes = [await self.get(k) for k in keys]
        return [n for n in nodes if n is not None]
