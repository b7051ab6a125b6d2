"""A request's LogRecord made from a per-logger template, not through LogRecord.__init__.

logger.info walks the stack for its caller, and LogRecord.__init__ splits the file name and looks
up the level's and the process's names, on every call. Here those come from a template made once
per logger and process; the time, the thread and the arguments are the record's own. It builds a
record without __init__ (LogRecord.__new__, then its __dict__): shape_difference() checks that a
record is still a plain object whose attributes are its __dict__, with the fields set here.
tests/test_logging.py holds it equal to the record logger.info would make.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from . import _shape

# Per logger: the attributes of its request records that are the same for every request. A forked
# worker starts without them and makes its own (its process's id and name).
_templates: dict[str, dict[str, Any]] = {}
os.register_at_fork(after_in_child=_templates.clear)
_OWN_ATTRIBUTES = ("created", "msecs", "relativeCreated", "thread", "threadName", "msg", "args")


def request_record(
    logger: logging.Logger, pathname: str, msg: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> logging.LogRecord:
    """The record `logger.makeRecord(logger.name, INFO, pathname, 0, msg, args, None, None,
    {"fields": fields})` makes, for a fraction of its cost."""
    template = _templates.get(logger.name)
    if template is None:
        made = logging.LogRecord(logger.name, logging.INFO, pathname, 0, msg, (), None)
        template = _templates[logger.name] = vars(made)
    attributes = template.copy()  # a copy, then assigned: fewer steps than building the dict key by key
    now = time.time()
    attributes["created"] = now
    attributes["msecs"] = int((now - int(now)) * 1000) + 0.0
    attributes["relativeCreated"] = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
    if logging.logThreads:
        attributes["thread"] = threading.get_ident()
        attributes["threadName"] = threading.current_thread().name
    attributes["msg"] = msg
    attributes["args"] = args
    attributes["fields"] = fields
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__ = attributes
    return record


def shape_difference() -> str | None:
    """What differs from the logging this was verified with (None: nothing we use)."""
    if "__slots__" in vars(logging.LogRecord):
        return "a LogRecord keeps its attributes in slots, not in its __dict__"
    probe = logging.LogRecord("probe", logging.INFO, __file__, 0, "probe", (), None)
    absent = [name for name in _OWN_ATTRIBUTES if name not in vars(probe)]
    return _shape.first(
        f"a LogRecord's __dict__ has no {', '.join(absent)}" if absent else None,
        None if isinstance(getattr(logging, "_startTime", None), float) else "logging has no _startTime",
    )
