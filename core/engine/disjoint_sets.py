"""Union-find (disjoint sets) of hashable, orderable items: chips that share ground, image tiles that one mine
crosses, footprints joined across a block seam. A set's root is its smallest item, so the result does not
depend on the order in which pairs are joined."""


class DisjointSets:
    """Items joined into sets; an item never seen is a set of its own.

    >>> sets = DisjointSets(range(4))
    >>> sets.join(3, 1), sets.join(1, 2), sets.join(2, 3)
    ((1, 3), (1, 2), None)
    >>> [sets.root(k) for k in range(4)]
    [0, 1, 1, 1]
    """

    def __init__(self, items=()):
        self.parent = {item: item for item in items}
        self.joins = 0

    def root(self, item):
        """The smallest item of ``item``'s set (paths halved on the way)."""
        parent = self.parent
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def join(self, a, b):
        """Join the sets of ``a`` and ``b``: ``(kept root, dropped root)``, or None when they were one set."""
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return None
        keep, drop = min(ra, rb), max(ra, rb)
        self.parent[drop] = keep
        self.joins += 1
        return keep, drop
