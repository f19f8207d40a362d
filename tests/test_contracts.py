"""Every implementation of a ``core.ports`` contract offers each of its methods with the same
parameters, and adapters' errors are the contract's errors, so services can rely on both."""

import inspect

import pytest

from bot.store.memory import MemoryStore
from bot.store.partitioned import PartitionedStore
from core.ports import ChatError, ChatPoster, GatewayError, Store, TicketReplies, TicketSource
from integrations.slack import SlackError, SlackPoster
from integrations.zendesk import ZendeskError, ZendeskGateway
from tests.recording_poster import RecordingPoster


def contract_methods(protocol: type) -> list[str]:
    return [
        name
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    ]


def parameters(function) -> list[tuple[str, object, bool]]:
    """(name, kind, has a default) of each parameter: what a caller relies on."""
    return [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [
        (Store, PartitionedStore),
        (Store, MemoryStore),
        (ChatPoster, SlackPoster),
        (ChatPoster, RecordingPoster),
        (TicketSource, ZendeskGateway),
        (TicketReplies, ZendeskGateway),
    ],
    ids=lambda c: c.__name__,
)
def test_implementation_offers_every_method_of_its_contract(protocol, implementation):
    methods = contract_methods(protocol)
    assert methods
    for name in methods:
        offered = getattr(implementation, name, None)
        assert callable(offered), f"{implementation.__name__} lacks {name}"
        assert parameters(offered) == parameters(getattr(protocol, name)), f"{implementation.__name__}.{name}"


def test_adapter_errors_are_the_contract_errors():
    slack_error = SlackError("chat.postMessage", "not_in_channel", "invite the bot")
    assert isinstance(slack_error, ChatError) and isinstance(slack_error, GatewayError)
    assert slack_error.code == "not_in_channel" and "invite the bot" in str(slack_error)
    assert issubclass(ZendeskError, GatewayError) and not issubclass(ZendeskError, ChatError)
