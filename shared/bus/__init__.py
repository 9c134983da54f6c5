"""The JetStream event bus: envelope, subjects, publisher and durable consumers."""

from shared.bus.bus import Bus, Consumer
from shared.bus.events import ChangeEvent, OwnerRef, event_for, stream_name, subject
from shared.bus.fanout import Listener

__all__ = [
    "Bus", "ChangeEvent", "Consumer", "Listener", "OwnerRef", "event_for", "stream_name", "subject",
]
