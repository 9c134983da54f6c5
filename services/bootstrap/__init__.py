"""Bootstrap: bring up the management cluster from the operator's machine, then leave.

``state`` records progress in the bootstrap data folder so an interrupted run can be
resumed or rolled back; ``bootset`` is the temporary service set (nats-server + store);
``driver`` creates the management cluster through a provider; ``pivot`` moves every object
into management's store; ``flow`` runs the phases in order.
"""
