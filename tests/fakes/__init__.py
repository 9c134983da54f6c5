"""Faithful fakes of peers that cannot run on these machines, at their HTTP boundary."""
