"""LCM's half of a reboot request: the Machine annotation edits its two askers share.

A MachineHealthCheck (``healthcheck.py``) and a graceful reboot (``gracefulreboot.py``) ask
the Machine's provider to power cycle its node by writing a request id in the
``reboot-request`` annotation; the provider marks ``reboot-powered-off`` and answers in
``reboot-done`` (``services.providers.reboot``). These are ``objects.patch`` mutators.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.models import (
    REBOOT_DONE_ANNOTATION,
    REBOOT_GRACEFUL_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Machine,
)


def ask(request: str, *, graceful: bool = False) -> Callable[[Machine], bool]:
    """Write ``request`` as the Machine's reboot request (no write if it is there), and -
    ``graceful`` - that its OS is asked to shut down first, in the same write."""
    marks = {REBOOT_REQUEST_ANNOTATION: request} | (
        {REBOOT_GRACEFUL_ANNOTATION: request} if graceful else {})

    def mutate(m: Machine) -> bool:
        ann = m.metadata.annotations
        if all(ann.get(k) == v for k, v in marks.items()):
            return False
        ann.update(marks)
        return True
    return mutate


def withdraw(request: str) -> Callable[[Machine], bool]:
    """Take ``request`` back unless the provider has powered the node off for it (then it
    must finish: power it on) or answered it."""
    def mutate(m: Machine) -> bool:
        ann = m.metadata.annotations
        if request in (ann.get(REBOOT_OFF_ANNOTATION), ann.get(REBOOT_DONE_ANNOTATION)) \
                or ann.get(REBOOT_REQUEST_ANNOTATION) != request:
            return False
        del ann[REBOOT_REQUEST_ANNOTATION]
        return True
    return mutate
