"""The shape of what Slack sends, checked before Bolt sees it: a signed payload whose fields have
the wrong type (an ``item`` that is a string, an ``actions`` list of strings, a submission
without ``state``) is turned away with one line that names the field, instead of failing in Bolt's
context building or in a listener with a traceback (and, over HTTP, a 500).

The models name only the fields Bolt and draftdesk's listeners read, and only their types (extra
fields pass, values are not judged): Bolt's context (``team``, ``user``, ``channel`` as an ID or
an object, ``authorizations``), each event the bot takes, ``block_actions``, view submissions and
slash commands. `payload_problem` runs them: `bot.operations.web` over HTTP, and
`integrations.slack_socket_mode` in Socket Mode. A listener reading a new field adds it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Shape(BaseModel):
    """Types as Slack sends them, no conversion (strict); other fields pass unread."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class _Id(_Shape):
    id: str | None = None


_IdOrObject = str | _Id | None  # Bolt reads `team`, `user`, `channel`, `enterprise` either way


class _Authorization(_Shape):
    enterprise_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    is_enterprise_install: bool | None = None


class _Context(_Shape):
    """What Bolt's context building reads, at the top level and in the event."""

    enterprise: _IdOrObject = None
    enterprise_id: str | None = None
    team: _IdOrObject = None
    team_id: str | None = None
    user: _IdOrObject = None
    user_id: str | None = None
    channel: _IdOrObject = None
    channel_id: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None


class _Message(_Context):
    ts: str | None = None


class _Event(_Context):
    type: str
    message: _Message | None = None
    previous_message: _Message | None = None


class _ReactionItem(_Shape):
    type: str
    channel: str | None = None  # none for a reaction on a file
    ts: str | None = None


class _ReactionEvent(_Event):
    user: str
    reaction: str
    item: _ReactionItem


class _HomeOpenedEvent(_Event):
    user: str
    tab: str | None = None


class _EventCallback(_Context):
    event: _Event
    authorizations: list[_Authorization] | None = None


class _Option(_Shape):
    value: str | None = None


class _Action(_Shape):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    selected_option: _Option | None = None


class _User(_Shape):
    id: str
    name: str | None = None
    username: str | None = None


class _Actions(_Context):
    user: _User
    actions: list[_Action] = Field(min_length=1)
    trigger_id: str | None = None
    message: _Message | None = None


class _Element(_Shape):
    value: str | None = None
    selected_option: _Option | None = None
    selected_options: list[_Option] | None = None


class _ViewState(_Shape):
    values: dict[str, dict[str, _Element]]


class _View(_Shape):
    callback_id: str
    private_metadata: str | None = None
    state: _ViewState


class _ClosedView(_Shape):
    callback_id: str


class _ResponseUrl(_Shape):
    response_url: str | None = None


class _ViewSubmission(_Context):
    user: _User
    view: _View
    response_urls: list[_ResponseUrl] | None = None


class _ViewClosed(_Context):
    user: _User
    view: _ClosedView


class _Command(_Context):
    command: str
    text: str | None = None


_BY_TYPE: dict[str, type[_Shape]] = {
    "event_callback": _EventCallback,
    "block_actions": _Actions,
    "view_submission": _ViewSubmission,
    "view_closed": _ViewClosed,
}
_EVENTS: dict[str, type[_Shape]] = {
    "reaction_added": _ReactionEvent,
    "reaction_removed": _ReactionEvent,
    "app_home_opened": _HomeOpenedEvent,
}
_EXPECTED = {
    "string_type": "a string",
    "model_type": "an object",
    "dict_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
    "bool_type": "true or false",
}


def payload_problem(body: Mapping[str, Any]) -> str | None:
    """Which field of a parsed Slack payload has a shape Bolt or the listeners cannot read, in one
    line; None when there is none."""
    kind = body.get("type")
    if "command" in body and kind is None:
        shape: type[_Shape] = _Command
    else:
        shape = _BY_TYPE.get(kind, _Context) if isinstance(kind, str) else _Context
    problem = _problem(shape, body, ())
    if problem is None and shape is _EventCallback:
        event = body["event"]
        specific = _EVENTS.get(event["type"])
        if specific is not None:
            problem = _problem(specific, event, ("event",))
    return problem


def payload_kind(body: Mapping[str, Any]) -> str:
    """How a log line names the payload: ``event_callback (reaction_added)``, ``block_actions``..."""
    kind = body.get("type")
    name = kind if isinstance(kind, str) else "command" if "command" in body else "request"
    event = body.get("event")
    if isinstance(event, dict) and isinstance(event.get("type"), str):
        return f"{name} ({event['type']})"
    return name


def _problem(shape: type[_Shape], data: Mapping[str, Any], prefix: tuple[str, ...]) -> str | None:
    try:
        shape.model_validate(data)
    except ValidationError as exc:
        return _described(exc, data, prefix)
    return None


def _described(exc: ValidationError, data: Any, prefix: tuple[str, ...]) -> str:
    """The first field in error and what Slack sends there ("event.item is a string, not an
    object"): the union branches pydantic names in its locations are not fields, so the path is
    walked in ``data``."""
    errors = exc.errors()
    first = _path(data, errors[0]["loc"])
    expected: list[str] = []
    for error in errors:
        if _path(data, error["loc"]) == first:
            wanted = _EXPECTED.get(error["type"], "another type")
            if wanted not in expected:
                expected.append(wanted)
    where = ".".join((*prefix, *first))
    if errors[0]["type"] == "missing":
        return f"{where} is missing"
    if errors[0]["type"] == "too_short":
        return f"{where} is empty"
    return f"{where} is {_json_type(_value_at(data, first))}, not {' or '.join(expected)}"


def _path(data: Any, loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The keys of ``loc`` that are keys of ``data`` (and the missing one at its end)."""
    path: list[str] = []
    node = data
    for step in loc:
        if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            path.append(str(step))
            node = node[step]
        elif isinstance(node, dict) and isinstance(step, str):
            path.append(step)
            if step not in node:
                break
            node = node[step]
    return tuple(path)


def _value_at(data: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        data = data[int(step)] if isinstance(data, list) else data[step]
    return data


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return "an object"
