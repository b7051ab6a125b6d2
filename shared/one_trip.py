"""A prepared statement run with one write and one answer from the server.

pg8000 runs a prepared statement as Bind, Flush, Execute, Flush, Sync. Each Flush makes the server
send what it has so far, so one statement costs Postgres three sends and the client up to three
wake-ups to read them. Bind, Execute, Sync is the same exchange (the server answers at Sync), in one
packet each way: 33-39 µs less CPU per statement in this process (bench/statement_cost.py), and
two sends fewer for the server.

Only the writing is ours. pg8000 prepares the statement, encodes the parameters, and reads the
answer (rows, errors, notices, the transaction status), so a statement behaves exactly as
pg8000's own run(); tests/test_one_trip.py holds the two side by side. That reaches into pg8000's
internals (its socket file, handle_messages, Context): requirements.txt pins the version, and those
tests fail first if an upgrade moves them.
"""

from __future__ import annotations

import struct
from typing import Any

import pg8000.native
from pg8000.converters import make_params
from pg8000.core import Context

# Execute the unnamed portal with no row limit, then Sync: the server answers everything at once.
_EXECUTE_SYNC = b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00" + b"S\x00\x00\x00\x04"
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
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
        context = Context(statement.statement, columns=statement.cols, input_funcs=statement.input_funcs)
        con.handle_messages(context)  # raises the statement's error, once the server is ready again
        return context.rows

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
