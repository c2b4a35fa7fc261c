"""Connection slots (pure bookkeeping): how many connections each uid may hold, with some kept for root."""

from __future__ import annotations


class Slots:
    """Who holds how many connection slots; the server calls it under its lock.

    An unprivileged uid takes a slot only while fewer than ``shared`` are held in all and it holds fewer
    than ``per_uid`` itself. Root and the agent's own uid (``privileged_uids``) take one while fewer than
    ``shared + reserved`` are held, so at least ``reserved`` slots are always left for them, whatever the
    others hold. :meth:`take` answers with the time the new connection has to send its request line.
    """

    def __init__(self, *, shared: int, per_uid: int, reserved: int, privileged_uids: frozenset[int],
                 read_timeout_s: float, crowded_read_timeout_s: float) -> None:
        if shared < 1 or per_uid < 1 or reserved < 1:
            raise ValueError("need at least one shared slot, one slot per uid and one reserved slot")
        if read_timeout_s <= 0 or crowded_read_timeout_s <= 0:
            raise ValueError("read timeouts must be positive")
        self._shared = shared
        self._per_uid = per_uid
        self._reserved = reserved
        self._privileged_uids = privileged_uids
        self._read_timeout_s = read_timeout_s
        self._crowded_read_timeout_s = min(crowded_read_timeout_s, read_timeout_s)
        self._held: dict[int, int] = {}

    @property
    def held(self) -> int:
        return sum(self._held.values())

    def held_by(self, uid: int) -> int:
        return self._held.get(uid, 0)

    def take(self, uid: int) -> float | None:
        """A slot for ``uid``: its read deadline in seconds, or None when it must be told "busy"."""
        already = self.held_by(uid)
        if uid in self._privileged_uids:
            if self.held >= self._shared + self._reserved:
                return None
            timeout_s = self._read_timeout_s
        else:
            if self.held >= self._shared or already >= self._per_uid:
                return None
            timeout_s = self._read_timeout_s if already == 0 else self._crowded_read_timeout_s
        self._held[uid] = already + 1
        return timeout_s

    def give_back(self, uid: int) -> None:
        left = self.held_by(uid) - 1
        if left < 0:
            raise ValueError("gave back a slot that was not taken")
        if left:
            self._held[uid] = left
        else:
            del self._held[uid]
