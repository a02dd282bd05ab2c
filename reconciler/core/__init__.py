"""The pure apply core: what we own (inventory, ownership), where we may write (tenancy),
what differs (diff), what to do (plan).

Nothing here does I/O. The runtime reads live objects through a
:class:`~reconciler.ports.Target`, hands them to these modules as plain dicts, and carries
out the resulting :class:`~reconciler.core.plan.Plan` step by step.
"""
