"""The rule every worker applies to choose a model's default version (pure)."""

from __future__ import annotations

from service.models.version_agreement import SWITCH_DELAY, Choice, PeerVersions, choose


def test_alone_a_worker_serves_its_newest_at_once() -> None:
    assert choose({1: 10.0, 2: 20.0}, 1, [], now=20.0) == Choice(2)
    assert choose({}, None, [], now=0.0) == Choice(None)


def test_a_version_one_worker_lacks_is_not_served_by_the_others() -> None:
    peer = PeerVersions({1: 5.0}, default=1)
    assert choose({1: 5.0, 2: 20.0}, 1, [peer], now=100.0) == Choice(1)


def test_the_switch_comes_at_the_same_instant_in_every_worker() -> None:
    # A had version 2 at t=20, B at t=23: both switch at 23 + SWITCH_DELAY.
    a = choose({1: 5.0, 2: 20.0}, 1, [PeerVersions({1: 5.0, 2: 23.0}, 1)], now=23.1)
    b = choose({1: 5.0, 2: 23.0}, 1, [PeerVersions({1: 5.0, 2: 20.0}, 1)], now=23.2)
    assert a == b == Choice(1, 2, 23.0 + SWITCH_DELAY)
    assert a.version_at(23.0 + SWITCH_DELAY - 0.01) == 1
    assert a.version_at(23.0 + SWITCH_DELAY) == 2


def test_a_restarted_worker_joins_the_server_s_choice() -> None:
    peers = [PeerVersions({1: 5.0, 2: 20.0}, 2), PeerVersions({1: 6.0, 2: 21.0}, 2)]
    # Just loaded both (t=50): it serves 2 now, as the others do, not from 50 + delay.
    assert choose({1: 50.0, 2: 50.0}, None, peers, now=50.0) == Choice(2)


def test_a_default_that_is_unloaded_here_gives_way() -> None:
    # Version 2 failed here: serve what all have, not nothing.
    assert choose({1: 5.0}, 2, [PeerVersions({1: 5.0, 2: 9.0}, 2)], now=30.0) == Choice(1)
