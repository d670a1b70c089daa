"""The gate that lets a run's download workers in as many at a time as its crowd allows."""

from __future__ import annotations

import threading
import time

from putio_mirror.app.crowding import STUCK_AFTER, Gate
from putio_mirror.core.pacing import Crowd
from putio_mirror.net import waits


class Workers:
    """Given a gate, run ``workers`` threads taking ``turns`` turns in all, each sleeping
    ``seconds`` of which ``waiting`` counted as waits for put.io's answers; note the most
    inside at once and whether any came in beyond what the crowd allowed."""

    def __init__(self, gate: Gate, *, workers: int, turns: int) -> None:
        self.gate, self.workers, self.left = gate, workers, turns
        self.lock = threading.Lock()
        self.inside = self.most_inside = 0
        self.beyond: list[tuple[int, int]] = []
        self.took_turns: set[int] = set()  # the threads that took a turn

    def run(
        self, seconds: float, waiting: float, counts: bool = True, between: float = 0.0
    ) -> None:
        def work() -> None:
            with self.gate.seat() as seat:
                while True:
                    with seat.turn() as turn:
                        with self.lock:
                            if self.left == 0:
                                return
                            self.left -= 1
                            self.inside += 1
                            self.most_inside = max(self.most_inside, self.inside)
                            if self.inside > self.gate.crowd.allowed:
                                self.beyond.append((self.inside, self.gate.crowd.allowed))
                            self.took_turns.add(threading.get_ident())
                        time.sleep(seconds)
                        waits.add(waiting)
                        with self.lock:
                            self.inside -= 1
                        if counts:
                            turn.counts()
                    time.sleep(between)  # as the executor journals the file's end

        threads = [threading.Thread(target=work) for _ in range(self.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads), "a worker was never let in"


def test_while_files_wait_for_put_io_the_gate_lets_in_more_up_to_the_most() -> None:
    gate = Gate(Crowd(8))
    workers = Workers(gate, workers=8, turns=60)
    workers.run(seconds=0.01, waiting=0.01)
    assert gate.crowd.allowed == 8
    assert workers.most_inside == 8
    assert workers.beyond == []


def test_while_files_hardly_wait_no_more_than_the_fewest_are_let_in() -> None:
    gate = Gate(Crowd(8))
    workers = Workers(gate, workers=8, turns=40)
    workers.run(seconds=0.002, waiting=0.0)
    assert gate.crowd.allowed == 2
    assert workers.most_inside <= 2
    assert workers.beyond == []


def test_a_worker_keeps_its_place_from_one_file_to_the_next() -> None:
    # handing the place to a sleeping worker after each file woke a thread a file
    gate = Gate(Crowd(8))
    workers = Workers(gate, workers=8, turns=40)
    workers.run(seconds=0.002, waiting=0.0, between=0.001)
    assert gate.crowd.allowed == 2
    assert len(workers.took_turns) == 2


def test_a_worker_that_leaves_hands_its_place_to_one_waiting() -> None:
    gate = Gate(Crowd(1))
    inside = threading.Event()
    with gate.seat() as first, first.turn():
        second = threading.Thread(target=lambda: _one_turn(gate, inside))
        second.start()
        assert not inside.wait(0.2)  # the one place is held
    assert inside.wait(STUCK_AFTER / 2)  # woken as it left, not by looking again
    second.join(2)


def _one_turn(gate: Gate, inside: threading.Event) -> None:
    with gate.seat() as seat, seat.turn():
        inside.set()


def test_turns_that_performed_no_file_do_not_count() -> None:
    gate = Gate(Crowd(8))
    workers = Workers(gate, workers=4, turns=20)
    workers.run(seconds=0.002, waiting=0.002, counts=False)
    assert gate.crowd.allowed == 2
