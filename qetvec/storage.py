"""Growable inverted lists: every list's rows contiguous in one arena, as the scan needs.

    arena row  0 ........................................................ capacity
    codes      [ list 3 | list 0 (size, then spare) | garbage | list 1 | ... ]
    ids        arena row -> user id (int64), the same layout

List l's rows are codes[start[l] : start[l] + size[l]], followed by spare rows up to
start[l] + slot[l]. A list that outgrows its slot gets a slot twice as large at the arena's
end (the list whose slot ends the arena grows in place); the old slot becomes garbage, and
when garbage exceeds the live rows everything is compacted (each list keeping spare rows
for as many again). Appends are therefore amortized O(1) per row, as with FAISS's
`ArrayInvertedLists` (one std::vector per list), and memory stays within about 4x the live
rows' bytes in the worst case (2x just after a compaction).

`IdMap` (id -> arena row, a numba hash) makes `find`, `remove` and `reconstruct` O(1) per
id. Extra per-row columns (`attach`, e.g. the float vectors an index keeps for
IndexRefineFlat) move with the codes, so they stay in the same order as the codes.

Every row enters through `add` (or `from_state`, when read from a file): that is where ids
are checked (`qetvec._validation.as_ids`: integers >= 0, distinct, and not stored yet) and
where every attached column must receive the new rows' values, so no path can store an id
qetvec would not store or leave a row without its column values.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from qetvec import _idmap_kernels as _k
from qetvec._validation import as_ids

MIN_SLOT = 8  # rows of a list's first slot


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(starts[i], starts[i] + lengths[i]) (int64)."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    offsets = np.repeat(np.asarray(starts, np.int64) - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(total, dtype=np.int64)


class IdMap:
    """id -> arena row, for ids >= 0: open addressing over two int64 arrays, kept at most
    half full (tombstones included), so lookups touch O(1) slots on average."""

    def __init__(self, expected: int = 0):
        self._alloc(max(16, 1 << int(2 * max(expected, 1) - 1).bit_length()))

    def _alloc(self, cap: int) -> None:
        self.keys = np.full(cap, _k.EMPTY, np.int64)
        self.rows = np.zeros(cap, np.int64)
        self.used = 0  # live keys + tombstones
        self.live = 0

    def __len__(self) -> int:
        return self.live

    def find(self, ids: np.ndarray) -> np.ndarray:
        """Arena row (n,) int64 of each id in ids (n,) int64, -1 where absent."""
        return _k.lookup(self.keys, self.rows, np.ascontiguousarray(ids, np.int64))

    def insert(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Map ids (n,) (absent, distinct: the caller checks) to rows (n,)."""
        if 2 * (self.used + len(ids)) > len(self.keys):
            keep = self.keys >= 0
            old_keys, old_rows = self.keys[keep], self.rows[keep]
            self._alloc(1 << int(4 * (len(old_keys) + len(ids))).bit_length())
            self.insert(old_keys, old_rows)
        reused = _k.insert(self.keys, self.rows, np.ascontiguousarray(ids, np.int64),
                           np.ascontiguousarray(rows, np.int64))
        self.used += len(ids) - reused
        self.live += len(ids)

    def update(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """New rows (n,) of present ids (n,) (after rows moved)."""
        _k.update(self.keys, self.rows, np.ascontiguousarray(ids, np.int64),
                  np.ascontiguousarray(rows, np.int64))

    def delete(self, ids: np.ndarray) -> None:
        self.live -= _k.delete(self.keys, np.ascontiguousarray(ids, np.int64))


class InvertedLists:
    """`nlist` growable lists of (code, id) rows in one arena (see the module docstring).

    Arrays the scan reads (numpy, int64 unless said):
      codes (capacity, code_size) uint8   ids (capacity,) arena row -> id (-1 unused)
      start (nlist,) first arena row      size (nlist,) rows     slot (nlist,) reserved rows
    `id_map` (an `IdMap`) exists when `track_ids`; without it ids are the caller's business
    (the flat index in FAISS's sequential mode, where id == position)."""

    def __init__(self, nlist: int, code_size: int, track_ids: bool = True):
        self.nlist, self.code_size = nlist, code_size
        self.codes = np.empty((0, code_size), np.uint8)
        self.ids = np.empty(0, np.int64)
        self.start = np.zeros(nlist, np.int64)
        self.size = np.zeros(nlist, np.int64)
        self.slot = np.zeros(nlist, np.int64)
        self.end = 0  # first arena row after every slot
        self.garbage = 0  # rows in abandoned slots
        self.ntotal = 0  # sum of size, kept up to date (read on every call)
        self.id_map: IdMap | None = IdMap() if track_ids else None
        self._columns = ["codes", "ids"]
        self._by_start: tuple[np.ndarray, np.ndarray] | None = None

    def attach(self, name: str, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Add a per-row column `name` (capacity, *row_shape) that moves with the codes; from
        now on `add` needs its values. Attaching a name twice is refused (the rows would
        move twice)."""
        if name in self._columns:
            raise ValueError(f"column {name!r} is already attached")
        setattr(self, name, np.zeros((len(self.codes), *row_shape), dtype))
        self._columns.append(name)

    def detach(self, name: str) -> None:
        """Drop the attached column `name` (its values are lost); unknown names are refused."""
        if name not in self.extra_columns:
            raise ValueError(f"column {name!r} is not attached (attached: {self.extra_columns})")
        self._columns.remove(name)
        delattr(self, name)

    @property
    def extra_columns(self) -> list[str]:
        """Names of the attached columns (beyond codes and ids)."""
        return self._columns[2:]

    def check_new_ids(self, ids: object, n: int, name: str = "ids") -> np.ndarray:
        """ids as int64 (n,) if they may be stored: integers >= 0, distinct (`as_ids`) and,
        with an id map, none stored already; ValueError naming the first offender."""
        ids = as_ids(ids, n, name)
        if self.id_map is not None and len(ids):
            stored = self.id_map.find(ids) >= 0
            if stored.any():
                raise ValueError(f"{name}: id {ids[np.argmax(stored)]} is already stored (ids must be unique)")
        return ids

    # -- queries ------------------------------------------------------------------------
    def find(self, ids: np.ndarray) -> np.ndarray:
        """Arena rows (n,) int64 of ids (n,), -1 where absent (needs `track_ids`)."""
        assert self.id_map is not None, "find needs an id map"
        return self.id_map.find(ids)

    def live_rows(self) -> np.ndarray:
        """Arena rows (ntotal,) int64 of every stored row, list by list."""
        return _ranges(self.start, self.size)

    def list_of(self, rows: np.ndarray) -> np.ndarray:
        """List number (n,) int64 of live arena rows (n,)."""
        if self._by_start is None:
            held = np.flatnonzero(self.slot > 0)
            order = np.argsort(self.start[held], kind="stable")
            self._by_start = self.start[held][order], held[order]
        starts, lists = self._by_start
        return lists[np.searchsorted(starts, rows, side="right") - 1]

    # -- changes ------------------------------------------------------------------------
    def add(self, lists: np.ndarray, codes: np.ndarray, ids: object,
            columns: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Append rows: codes (n, code_size) uint8 under ids (n,) to lists (n,) int64, with
        columns[name] (n, *row_shape) for every attached column. Returns their arena rows
        (n,). Checks first (`check_new_ids`, every column given), so a refused add stores
        nothing."""
        ids = self.check_new_ids(ids, len(codes))
        columns = dict(columns or {})
        if sorted(columns) != sorted(self.extra_columns):
            raise ValueError(f"rows need values for the columns {self.extra_columns}, got {sorted(columns)}")
        counts = np.bincount(lists, minlength=self.nlist).astype(np.int64)
        self._reserve(counts)
        if len(lists) and (self.nlist == 1 or len(lists) == 1):  # one run (a one-row add)
            end = int(self.start[lists[0]] + self.size[lists[0]])
            rows = np.arange(end, end + len(lists), dtype=np.int64)
        else:
            order = np.argsort(lists, kind="stable")
            sorted_lists = lists[order]
            first = np.searchsorted(sorted_lists, sorted_lists)  # first position of each list's run
            rows = np.empty(len(lists), np.int64)
            rows[order] = (self.start + self.size)[sorted_lists] + np.arange(len(lists)) - first
        self.codes[rows] = codes
        self.ids[rows] = ids
        for name, values in columns.items():
            getattr(self, name)[rows] = values
        self.size += counts
        self.ntotal += len(rows)
        if self.id_map is not None:
            self.id_map.insert(ids, rows)
        return rows

    def remove(self, rows: np.ndarray) -> None:
        """Remove live arena rows (distinct), FAISS `ArrayInvertedLists` style: the last rows
        of each list fill the holes, so the cost is O(len(rows)), not O(list size)."""
        if len(rows) == 0:
            return
        rows = np.sort(rows)
        lists = self.list_of(rows)
        order = np.lexsort((rows, lists))
        rows, lists = rows[order], lists[order]
        touched, counts = np.unique(lists, return_counts=True)
        new_size = self.size[touched] - counts
        tail = _ranges(self.start[touched] + new_size, counts)  # rows that survive must fit above
        holes = rows[rows < np.repeat(self.start[touched] + new_size, counts)]
        fillers = tail[~np.isin(tail, rows, assume_unique=True)]
        if self.id_map is not None:
            self.id_map.delete(self.ids[rows])
        self._move(fillers, holes)
        self.ids[tail] = -1
        self.size[touched] = new_size
        self.ntotal -= len(rows)

    def remove_ordered(self, list_no: int, rows: np.ndarray) -> None:
        """Remove live rows (distinct) of list `list_no`, shifting later rows down in order
        (FAISS's `IndexFlatCodes::remove_ids`): O(list size)."""
        s, n = int(self.start[list_no]), int(self.size[list_no])
        keep = np.ones(n, bool)
        keep[rows - s] = False
        if self.id_map is not None:
            self.id_map.delete(self.ids[rows])
        for name in self._columns:
            arr = getattr(self, name)
            arr[s:s + int(keep.sum())] = arr[s:s + n][keep]
        self.size[list_no] = int(keep.sum())
        self.ntotal -= n - int(self.size[list_no])
        self.ids[s + self.size[list_no]:s + n] = -1
        if self.id_map is not None:
            moved = np.arange(s, s + self.size[list_no])
            self.id_map.update(self.ids[moved], moved)

    def set_code_size(self, code_size: int) -> None:
        """Store codes of another width from now on (only while empty: the index's codec was
        retrained into one of another code size)."""
        if self.ntotal:
            raise RuntimeError(f"cannot change the code size of lists holding {self.ntotal} rows")
        self.reset()
        self.code_size = code_size
        self.codes = np.empty((0, code_size), np.uint8)

    def reset(self, track_ids: bool | None = None) -> None:
        """Drop every row and the arena (attached columns stay attached, emptied); with
        `track_ids`, also switch the id map on or off."""
        for name in self._columns:
            arr = getattr(self, name)
            setattr(self, name, arr[:0].copy())
        self.start[:] = self.size[:] = self.slot[:] = 0
        self.end = self.garbage = self.ntotal = 0
        track = self.id_map is not None if track_ids is None else track_ids
        self.id_map = IdMap() if track else None
        self._by_start = None

    # -- internals ----------------------------------------------------------------------
    def _move(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Copy rows src -> dst (disjoint sets) in every column; re-point their ids."""
        for name in self._columns:
            arr = getattr(self, name)
            arr[dst] = arr[src]
        if self.id_map is not None and len(dst):
            self.id_map.update(self.ids[dst], dst)

    def _reserve(self, counts: np.ndarray) -> None:
        """Make room for counts[l] more rows in each list l."""
        need = self.size + counts
        grow = np.flatnonzero(need > self.slot)
        if len(grow) == 0:
            return
        new_slot = np.maximum(np.maximum(2 * self.slot[grow], need[grow]), MIN_SLOT)
        at_end = (self.slot[grow] > 0) & (self.start[grow] + self.slot[grow] == self.end)
        if at_end.any():  # the arena's last slot grows in place
            self.end = int(self.start[grow][at_end][0] + new_slot[at_end][0])
            self.slot[grow[at_end]] = new_slot[at_end]
        moving, new_slot = grow[~at_end], new_slot[~at_end]
        new_start = self.end + np.cumsum(new_slot) - new_slot
        self.end += int(new_slot.sum())
        self._ensure_capacity(self.end)
        self._move(_ranges(self.start[moving], self.size[moving]),
                   _ranges(new_start, self.size[moving]))
        self.ids[_ranges(self.start[moving], self.size[moving])] = -1
        self.garbage += int(self.slot[moving].sum())
        self.start[moving], self.slot[moving] = new_start, new_slot
        self._by_start = None
        if self.garbage > self.ntotal + counts.sum():
            self._compact(need)

    def _compact(self, need: np.ndarray) -> None:
        """Repack every list (spare rows for as many again), dropping garbage."""
        slot = np.where(need > 0, np.maximum(2 * need, MIN_SLOT), 0)
        start = np.cumsum(slot) - slot
        src, dst = _ranges(self.start, self.size), _ranges(start, self.size)
        for name in self._columns:
            old = getattr(self, name)
            new = np.zeros((int(slot.sum()), *old.shape[1:]), old.dtype)
            if name == "ids":
                new[:] = -1
            new[dst] = old[src]
            setattr(self, name, new)
        if self.id_map is not None:
            self.id_map.update(self.ids[dst], dst)
        self.start, self.slot, self.end, self.garbage = start, slot, int(slot.sum()), 0
        self._by_start = None

    def _ensure_capacity(self, rows: int) -> None:
        """Grow every column (by doubling) to at least `rows` arena rows."""
        if rows <= len(self.codes):
            return
        cap = max(rows, 2 * len(self.codes))
        for name in self._columns:
            old = getattr(self, name)
            new = np.empty((cap, *old.shape[1:]), old.dtype)
            new[:len(old)] = old
            if name == "ids":
                new[len(old):] = -1
            setattr(self, name, new)

    # -- persistence --------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Compact arrays: codes (ntotal, code_size) uint8 and ids (ntotal,) int64 list by
        list, sizes (nlist,) int64."""
        rows = self.live_rows()
        return {"codes": self.codes[rows], "ids": self.ids[rows], "list_sizes": self.size.copy()}

    @classmethod
    def from_state(cls, nlist: int, code_size: int, track_ids: bool,
                   arrays: dict[str, np.ndarray]) -> "InvertedLists":
        """Inverse of `state`, after checking the arrays agree (ValueError naming the field)."""
        codes, ids, sizes = arrays["codes"], arrays["ids"], arrays["list_sizes"]
        if sizes.dtype != np.int64 or sizes.shape != (nlist,) or (sizes < 0).any():
            raise ValueError(f"list_sizes must be {nlist} non-negative int64, got {sizes.dtype} {sizes.shape}")
        n = int(sizes.sum())
        if codes.dtype != np.uint8 or codes.shape != (n, code_size):
            raise ValueError(f"codes must be uint8 ({n}, {code_size}) for these list sizes, "
                             f"got {codes.dtype} {codes.shape}")
        if ids.dtype != np.int64 or ids.shape != (n,):
            raise ValueError(f"ids must be int64 ({n},), got {ids.dtype} {ids.shape}")
        as_ids(ids, n)  # what `add` would store: >= 0 and distinct
        lists = cls(nlist, code_size, track_ids)
        lists.codes, lists.ids = np.ascontiguousarray(codes), ids.copy()
        lists.size, lists.slot = sizes.copy(), sizes.copy()
        lists.start = np.cumsum(sizes) - sizes
        lists.end = lists.ntotal = n
        if lists.id_map is not None:
            lists.id_map = IdMap(n)
            lists.id_map.insert(ids, np.arange(n))
        return lists
