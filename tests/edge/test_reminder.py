"""The one rule for logging a lasting trouble (edge/reminder.py)."""

from deepfer.edge.reminder import REMIND_S, Reminder


def test_said_when_it_starts_then_once_a_period_and_at_once_after_a_reset():
    said = Reminder(600)
    assert [t for t in (100, 101, 699, 700, 1000, 1299, 1300) if said.due(t)] == [100, 700, 1300]
    said.reset()  # a new trouble: said at once, then a period from there
    assert said.due(1301) and not said.due(1900) and said.due(1901)
    assert Reminder(600).due()  # on time.monotonic() when no time is given
    assert Reminder().period_s == REMIND_S == 600  # the one period: camera, broker, outbox
