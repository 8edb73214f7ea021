"""``block``, with the block's result schema in the same declaration.

``returns`` is what the block answers under ``contextWrites.to``: a result schema from
schemas/results.py, or ``[Schema]`` for a list of them. Until connector.registry.Block has
a ``returns`` field of its own, it is set on the declared block here; then this helper goes
and the blocks import ``block`` from connector.registry again.
"""

from connector import registry


def block(name, method, path, schema, description, *, returns, **options):
    """Declare a block, with its result schema, and add it to the registry."""
    blk = registry.block(name, method, path, schema, description, **options)
    blk.returns = returns
    return blk
