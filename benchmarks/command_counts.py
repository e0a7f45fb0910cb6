"""Redis round trips and commands per store operation.

Round trips are the commands that the store sends, counted on the client side.
``INFO commandstats`` on the server also counts the commands that a Lua script
runs, so its figures show what one round trip did. Each operation runs once
before counting starts. Redis has then loaded the operation's Lua script, so no
call in the count gets a NOSCRIPT error and is sent again as EVAL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bearer_mw import SessionStore
from benchmarks import redis_server, seeding
from benchmarks.redis_server import HarnessClient

CALLS_PER_OPERATION = 100


@dataclass
class OperationCommands:
    """Round trips and server-side commands of one store operation, per call.

    ``by_name`` is the server's count per command, including the commands that
    Lua scripts ran.
    """

    operation: str
    calls: int
    round_trips_per_call: float
    by_name: dict[str, float] = field(default_factory=dict)


class CountingClient:
    """Hands every command to ``client`` and counts them: one per round trip."""

    def __init__(self, client: HarnessClient) -> None:
        self.client = client
        self.sent = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        # RedisCluster.execute_command carries no annotations.
        client: Any = self.client
        return client.execute_command(*args, **options)


def count_commands(
    counting: CountingClient, operation: str, calls: Sequence[Callable[[], object]]
) -> OperationCommands:
    """Run every call and divide the commands sent and run by the number of calls."""
    client = counting.client
    before = redis_server.command_calls(client)
    sent_before = counting.sent
    for call in calls:
        call()
    delta = redis_server.command_delta(before, redis_server.command_calls(client))
    count = len(calls)
    return OperationCommands(
        operation=operation,
        calls=count,
        round_trips_per_call=(counting.sent - sent_before) / count,
        by_name={name: made / count for name, made in sorted(delta.items())},
    )


def probe_operation_commands(
    client: HarnessClient, calls: int = CALLS_PER_OPERATION
) -> list[OperationCommands]:
    """Count the commands of create, validate, renew and invalidate on ``client``.

    Empties the database before and after.
    """
    client.flushdb()
    counting = CountingClient(client)
    store = SessionStore(counting)
    state = seeding.SESSION_STATE
    users = [seeding.user_id_for(index) for index in range(calls)]

    # One call of each operation first, so its script is loaded.
    warm_token, _ = store.create_session(users[0], state)
    store.validate_session(warm_token)
    renewed = store.renew_session(warm_token)
    if renewed is None:
        raise RuntimeError("a session created a moment ago could not be renewed")
    store.invalidate_session(renewed[0])

    tokens: list[str] = []
    successors: list[str] = []
    creates = [partial(create, store, user, tokens) for user in users]
    results = [count_commands(counting, "create_session", creates)]
    validations = [partial(store.validate_session, token) for token in tokens]
    results.append(count_commands(counting, "validate_session", validations))
    renewals = [partial(renew, store, token, successors) for token in tokens]
    results.append(count_commands(counting, "renew_session", renewals))
    ends = [partial(store.invalidate_session, token) for token in successors]
    results.append(count_commands(counting, "invalidate_session", ends))
    client.flushdb()
    return results


def create(store: SessionStore, user_id: str, tokens: list[str]) -> None:
    tokens.append(store.create_session(user_id, seeding.SESSION_STATE)[0])


def renew(store: SessionStore, token: str, successors: list[str]) -> None:
    renewed = store.renew_session(token)
    if renewed is None:
        raise RuntimeError("a live session could not be renewed")
    successors.append(renewed[0])
