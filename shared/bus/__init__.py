"""The JetStream event bus: envelope, subjects, publisher and durable consumers."""

from shared.bus.bus import Bus, Consumer
from shared.bus.events import ChangeEvent, OwnerRef, event_for, stream_name, subject

__all__ = ["Bus", "ChangeEvent", "Consumer", "OwnerRef", "event_for", "stream_name", "subject"]
