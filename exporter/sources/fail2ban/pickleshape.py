"""The shape of what a pickle would build, measured from its opcodes before anything is built.

A pickle's memo lets a reply of a few hundred bytes describe an object graph exponentially larger than
itself (`a = [x, x]; b = [a, a]; ...`, each level one memo reference): building it is cheap, but
anything that walks it (repr, a formatter, a hash of a nested tuple) runs for ever in C, holding the
GIL, while memory grows. A deep nesting overflows a recursive walker. So the opcodes are read first
(`pickletools.genops`, which builds nothing) and a model of the graph is kept - one node per object,
its children as references - and the reply is refused unless:

- at most `MAX_VALUES` values are pushed (objects and references) and memo indexes stay below it, so
  the unpickler's own stack, memo and objects stay proportionate;
- only plain builtins are built (`find_class` refuses the rest too, this refuses before any of it);
- dict keys and set members are scalars, so hashing them costs their length, not their expansion;
- integers fit in 64 bits;
- the result, expanded as a tree (a shared reference counted each time it is reached, strings by their
  length), weighs at most `MAX_EXPANDED` and nests at most `MAX_DEPTH` levels, with no cycle.

Mutable containers grow after they are referenced (APPEND on a memoized list), so the weights are
taken over the final graph, once all opcodes are read. Work is linear in the reply's length, and the
caller's deadline is checked as it goes.
"""

from __future__ import annotations

import pickletools
from collections.abc import Iterator

from exporter.sources.host.replies import INT_MAX, INT_MIN, Deadline

MAX_VALUES = 1 << 20
MAX_EXPANDED = 16 << 20  # about the length of the result's repr; a real reply's is near its pickle's
MAX_DEPTH = 32  # fail2ban's status replies nest 4 levels
_DEADLINE_EVERY = 4096  # opcodes between deadline checks

_NUMBER_WEIGHT = 24  # the longest repr of a 64-bit integer or a float
_INTS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_FLOATS = frozenset({"FLOAT", "BINFLOAT"})
_TEXTS = frozenset({
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
})  # fmt: skip
_CONSTANTS = frozenset({"NONE", "NEWTRUE", "NEWFALSE"})
_EMPTY = frozenset({"EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "EMPTY_TUPLE"})
_FROM_MARK = frozenset({"LIST", "TUPLE", "DICT", "FROZENSET"})
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_IGNORED = frozenset({"PROTO", "FRAME"})


class ShapeError(ValueError):
    """The pickle is malformed, or builds more, deeper or other than a fail2ban reply does."""


class UnsafeOpcodeError(ShapeError):
    """The pickle names a global, calls something or uses a persistent id or buffer."""


class _Graph:
    """The objects a pickle builds, as node numbers: each node's own weight and, for containers, children."""

    def __init__(self) -> None:
        self.weights: list[int] = []
        self.children: dict[int, list[int]] = {}
        self.stack: list[int] = []
        self.marks: list[int] = []
        self.memo: dict[int, int] = {}
        self.pushed = 0

    # -- the unpickler's stack -------------------------------------------------------------------
    def push(self, node: int) -> None:
        self.pushed += 1
        if self.pushed > MAX_VALUES:
            raise ShapeError(f"reply pushes more than {MAX_VALUES} values")
        self.stack.append(node)

    def pop(self) -> int:
        top = self.peek()
        self.stack.pop()
        return top

    def peek(self) -> int:
        if not self.stack or (self.marks and len(self.stack) == self.marks[-1]):
            raise ShapeError("reply reads an empty stack")
        return self.stack[-1]

    def pop_mark(self) -> list[int]:
        if not self.marks:
            raise ShapeError("reply has no mark to pop to")
        start = self.marks.pop()
        items, self.stack[start:] = self.stack[start:], []
        return items

    def top_container(self) -> list[int]:
        if not self.stack or self.stack[-1] not in self.children:
            raise ShapeError("reply adds items to something that is not a container")
        return self.children[self.stack[-1]]

    # -- nodes -----------------------------------------------------------------------------------
    def new(self, weight: int, children: list[int] | None = None) -> None:
        node = len(self.weights)
        self.weights.append(weight)
        if children is not None:
            self.children[node] = children
        self.push(node)

    def hashed(self, items: list[int]) -> list[int]:
        """Items about to be hashed (dict keys, set members): scalars only."""
        if any(item in self.children for item in items):
            raise ShapeError("reply uses a container as a dict key or set member")
        return items

    def memo_index(self, index: int) -> int:
        if not 0 <= index < MAX_VALUES:
            raise ShapeError(f"reply uses memo index {index}")
        return index

    # -- the result ------------------------------------------------------------------------------
    def measure(self, root: int) -> None:
        """Refuse a result that is cyclic, nests deeper than MAX_DEPTH or expands past MAX_EXPANDED."""
        done: dict[int, tuple[int, int]] = {}  # node -> (expanded weight, depth)
        open_nodes: set[int] = set()
        pending = [(root, False)]
        while pending:
            node, closing = pending.pop()
            kids = self.children.get(node)
            if not kids:
                done[node] = (self.weights[node], 1)
            elif closing:
                open_nodes.discard(node)
                weight = self.weights[node] + sum(done[kid][0] for kid in kids)
                depth = 1 + max(done[kid][1] for kid in kids)
                if depth > MAX_DEPTH:
                    raise ShapeError(f"reply nests deeper than {MAX_DEPTH} levels")
                if weight > MAX_EXPANDED:
                    raise ShapeError(f"reply expands to more than {MAX_EXPANDED} (shared references counted)")
                done[node] = (weight, depth)
            elif node in open_nodes:
                raise ShapeError("reply contains itself")
            elif node not in done:
                open_nodes.add(node)
                pending.append((node, True))
                pending.extend((kid, False) for kid in kids if kid not in done)


def _step(graph: _Graph, name: str, arg: object) -> None:
    """One opcode's effect on the graph; UnsafeOpcodeError for anything but plain builtins."""
    if name in _INTS:
        value = int(arg) if isinstance(arg, int) else 0  # INT's arg is a bool for I00/I01
        if not INT_MIN <= value <= INT_MAX:
            raise ShapeError(f"reply holds an integer of {value.bit_length()} bits")
        graph.new(_NUMBER_WEIGHT)
    elif name in _FLOATS:
        graph.new(_NUMBER_WEIGHT)
    elif name in _TEXTS:
        graph.new(1 + len(arg) if isinstance(arg, str | bytes | bytearray) else 1)
    elif name in _CONSTANTS:
        graph.new(1)
    elif name in _EMPTY:
        graph.new(1, [])
    elif name in _FROM_MARK:
        items = graph.pop_mark()
        if name == "DICT":
            graph.hashed(items[0::2])
        elif name == "FROZENSET":
            graph.hashed(items)
        graph.new(1, items)
    elif name in _TUPLE_N:
        items = [graph.pop() for _ in range(_TUPLE_N[name])][::-1]
        graph.new(1, items)
    elif name == "APPEND":
        item = graph.pop()
        graph.top_container().append(item)
    elif name in ("APPENDS", "ADDITEMS"):
        items = graph.pop_mark()
        graph.top_container().extend(graph.hashed(items) if name == "ADDITEMS" else items)
    elif name == "SETITEM":
        value, key = graph.pop(), graph.pop()
        graph.top_container().extend((*graph.hashed([key]), value))
    elif name == "SETITEMS":
        items = graph.pop_mark()
        graph.hashed(items[0::2])
        graph.top_container().extend(items)
    else:
        _stack_step(graph, name, arg)


def _stack_step(graph: _Graph, name: str, arg: object) -> None:
    """The opcodes that move references: marks, pops, DUP and the memo."""
    if name == "MARK":
        graph.marks.append(len(graph.stack))
    elif name == "POP":
        if graph.marks and len(graph.stack) == graph.marks[-1]:
            graph.marks.pop()  # as the unpickler does: POP at a mark discards the mark
        else:
            graph.pop()
    elif name == "POP_MARK":
        graph.pop_mark()
    elif name == "DUP":
        graph.push(graph.peek())
    elif name in _GETS:
        index = graph.memo_index(int(arg) if isinstance(arg, int) else -1)
        if index not in graph.memo:
            raise ShapeError(f"reply refers to memo index {index}, never stored")
        graph.push(graph.memo[index])
    elif name in _PUTS or name == "MEMOIZE":
        index = len(graph.memo) if name == "MEMOIZE" else int(arg) if isinstance(arg, int) else -1
        graph.memo[graph.memo_index(index)] = graph.peek()
    elif name not in _IGNORED:
        raise UnsafeOpcodeError(f"reply uses the {name} opcode: refused")


def _opcodes(data: bytes, deadline: Deadline | None) -> Iterator[tuple[str, object]]:
    for count, (opcode, arg, _) in enumerate(pickletools.genops(data)):
        if deadline is not None and count % _DEADLINE_EVERY == 0:
            deadline.remaining()  # TimeoutError once it has passed
        yield opcode.name, arg


def check_shape(data: bytes, deadline: Deadline | None = None) -> None:
    """Return when unpickling data builds a bounded graph of plain builtins; ShapeError otherwise."""
    graph = _Graph()
    try:
        for name, arg in _opcodes(data, deadline):
            if name == "STOP":
                graph.measure(graph.pop())
                return
            _step(graph, name, arg)
    except (ValueError, IndexError, TypeError) as exc:
        if isinstance(exc, ShapeError):
            raise
        raise ShapeError(f"undecodable reply: {exc}") from None
    raise ShapeError("undecodable reply: no STOP")
