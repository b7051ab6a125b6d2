"""A prepared statement run with one write and one answer from the server.

pg8000 runs a prepared statement as Bind, Flush, Execute, Flush, Sync. Each Flush makes the server
send what it has so far, so one statement costs Postgres three sends and the client up to three
wake-ups to read them. Bind, Execute, Sync is the same exchange (the server answers at Sync), in one
packet each way: less CPU per statement in this process (bench/statement_cost.py measures it), and
two sends fewer for the server.

pg8000 prepares the statement and encodes the parameters. The answer of a statement that went as
expected (BindComplete, rows, CommandComplete, ReadyForQuery, all arrived) is read here, in one
pass over the bytes received; any other answer (an error, a notice, a parameter status, a partial
read) is left unread for pg8000's own handle_messages, so errors, notices and the transaction
status behave exactly as pg8000's run(). tests/test_one_trip.py holds the two side by side. That
reaches into pg8000's internals (its socket file, handle_messages, Context, the statement's input
functions): shape_difference() says whether they are still as verified (shared/fast/__init__.py
pins the versions), and without them the pool runs pg8000's own prepared statements.
"""

from __future__ import annotations

import dis
import enum
import struct
from typing import Any, Literal, cast

import pg8000.native
from pg8000.converters import make_params
from pg8000.core import IN_FAILED_TRANSACTION, Context, CoreConnection
from pg8000.native import PreparedStatement

from . import _shape

# Execute the unnamed portal with no row limit, then Sync: the server answers everything at once.
_EXECUTE_SYNC = b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00" + b"S\x00\x00\x00\x04"
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_BIND_COMPLETE = b"2\x00\x00\x00\x04"
_DATA_ROW, _COMMAND_COMPLETE, _READY_FOR_QUERY = b"D"[0], b"C"[0], b"Z"[0]


class _Unread(enum.Enum):
    NOT_PLAIN = "an answer left for pg8000 to read"


# Requests kept per statement, by parameters: the same few repeat (a language; a day, a language
# and the day's fact), and a new one costs only its encoding.
MOST_CACHED_REQUESTS = 64


class OneTripStatement:
    def __init__(self, con: pg8000.native.Connection, sql: str) -> None:
        self._con = con
        self._statement = con.prepare(sql)
        self._requests: dict[tuple[tuple[str, Any], ...], bytes] = {}

    def run(self, **params: Any) -> list[list[Any]]:
        key = tuple(params.items())
        try:
            request = self._requests.get(key)
            remember = True
        except TypeError:  # a parameter that cannot be a key (a list): encode it every time
            request, remember = None, False
        if request is None:
            request = self._request(params)
            if remember:
                if len(self._requests) >= MOST_CACHED_REQUESTS:
                    self._requests.clear()
                self._requests[key] = request
        con, statement = self._con, self._statement
        try:
            con._sock.write(request)
            con._sock.flush()
        except (OSError, ValueError, AttributeError) as exc:  # as pg8000's own writes: a closed or broken socket
            raise pg8000.native.InterfaceError("network error") from exc
        rows = self._read_plain_answer()
        if rows is _Unread.NOT_PLAIN:
            context = Context(statement.statement, columns=statement.cols, input_funcs=statement.input_funcs)
            con.handle_messages(context)  # raises the statement's error, once the server is ready again
            rows = context.rows
        # None for a command (BEGIN, COMMIT), as pg8000's run() answers; typed for the statements
        # with rows that callers read.
        return cast("list[list[Any]]", rows)

    def _read_plain_answer(self) -> list[list[Any]] | Literal[_Unread.NOT_PLAIN] | None:
        """The rows of an answer that is exactly BindComplete, DataRow..., CommandComplete and
        ReadyForQuery, all received (None for a command, as pg8000 answers one); NOT_PLAIN, with
        nothing consumed, for anything else.

        pg8000 reads each message with two calls into its socket file and a handler per message;
        here the bytes that arrived are parsed in place.
        """
        con = self._con
        if con._transaction_status == IN_FAILED_TRANSACTION:  # pg8000 answers those itself
            return _Unread.NOT_PLAIN
        try:
            data = con._sock.peek()  # what has arrived; one read on the socket if nothing has
        except OSError as exc:
            raise pg8000.native.InterfaceError("network error") from exc
        if not data.startswith(_BIND_COMPLETE):
            return _Unread.NOT_PLAIN  # an error, a notice, a closed connection: pg8000 reads it
        input_funcs, encoding = self._statement.input_funcs, con._client_encoding
        rows: list[list[Any]] = []
        position, end, unpack = 5, len(data), _INT32.unpack_from
        while position + 5 <= end:
            code = data[position]
            following = position + 1 + unpack(data, position + 1)[0]
            if following > end:
                return _Unread.NOT_PLAIN  # the rest is still on its way
            if code == _DATA_ROW:
                field = position + 7  # past the code, the length and the column count
                row: list[Any] = []
                for convert in input_funcs:
                    size = unpack(data, field)[0]
                    field += 4
                    if size == -1:
                        row.append(None)
                    else:
                        row.append(convert(str(data[field : field + size], encoding=encoding)))
                        field += size
                rows.append(row)
            elif code == _READY_FOR_QUERY:
                con._sock.read(following)  # consumed only now, all of it at once
                con._transaction_status = data[position + 5 : following]
                return rows if self._statement.cols is not None else None  # a command: None, as pg8000
            elif code != _COMMAND_COMPLETE:
                return _Unread.NOT_PLAIN
            position = following
        return _Unread.NOT_PLAIN

    def _request(self, params: dict[str, Any]) -> bytes:
        """Bind (text parameters, text results), Execute and Sync, as one buffer."""
        con, statement = self._con, self._statement
        values = make_params(con.py_types, statement.make_vals(params))
        bind = bytearray(b"\x00" + statement.name_bin + _INT16.pack(0) + _INT16.pack(len(values)))
        for value in values:
            if value is None:
                bind += _INT32.pack(-1)
            else:
                encoded = value.encode(con._client_encoding)
                bind += _INT32.pack(len(encoded)) + encoded
        bind += _INT16.pack(0)
        return b"B" + _INT32.pack(len(bind) + 4) + bytes(bind) + _EXECUTE_SYNC


def shape_difference() -> str | None:
    """What differs from the pg8000 this was verified with (None: nothing we use)."""
    return _shape.first(
        _shape.missing_attributes(CoreConnection, ("handle_messages", "prepare_statement")),
        _assigned(CoreConnection.__init__, ("_sock", "_usock", "_client_encoding", "_transaction_status", "py_types")),
        _assigned(PreparedStatement.__init__, ("statement", "make_vals", "name_bin", "cols", "input_funcs")),
        _shape.parameters_differ(Context, ("statement", "stream", "columns", "input_funcs")),
        _shape.parameters_differ(make_params, ("py_types", "values")),
        None if IN_FAILED_TRANSACTION == b"E" else "IN_FAILED_TRANSACTION is no longer b'E'",
    )


def _assigned(init: Any, names: tuple[str, ...]) -> str | None:
    """Instance attributes exist only once made: read them off the bytecode of the __init__ that sets
    them (its source would cost a read and a tokenizing of pg8000's core.py on every cold start)."""
    stored = {instruction.argval for instruction in dis.get_instructions(init) if instruction.opname == "STORE_ATTR"}
    absent = [name for name in names if name not in stored]
    return f"{init.__qualname__} no longer sets {', '.join(absent)}" if absent else None
