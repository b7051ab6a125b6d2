"""The small values behind the day's fact: its cache lifetime, a cached choice read back, the
instance's memo of choices. Pure values: no servers needed."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.facts import DayChoice, DayMemo, seconds_until_utc_midnight

CHOICE = {"fact_id": "0123456789abcdef", "fact": "Cats purr.", "language": "en", "source": "wiki"}


def test_the_last_second_of_the_day_still_lives_one_second() -> None:
    assert seconds_until_utc_midnight(datetime(2026, 11, 26, 23, 59, 58, 500_000, tzinfo=UTC)) == 1
    assert seconds_until_utc_midnight(datetime(2026, 11, 26, 23, 59, 59, 999_999, tzinfo=UTC)) == 1


def test_a_cached_choice_reads_back_and_a_partial_or_foreign_one_is_a_miss() -> None:
    assert DayChoice.from_cached(CHOICE) == DayChoice("0123456789abcdef", "Cats purr.", "en", "wiki")
    assert DayChoice.from_cached({**CHOICE, "source": None}) is None
    assert DayChoice.from_cached({**CHOICE, "fact_id": 12}) is None


def test_the_memo_keeps_the_days_choices_of_every_language_and_drops_earlier_days() -> None:
    memo = DayMemo()
    today, yesterday = date(2026, 11, 26), date(2026, 11, 25)
    memo.remember("en", yesterday, "en-yesterday")
    memo.remember("en", today, "en-today")
    memo.remember("de", today, "de-today")
    assert (memo.get("en", today), memo.get("de", today), memo.get("en", yesterday)) == ("en-today", "de-today", None)


def test_forgetting_a_choice_keeps_the_others() -> None:
    memo = DayMemo()
    today = date(2026, 11, 26)
    memo.remember("en", today, "en-today")
    memo.remember("de", today, "de-today")
    memo.forget("en", today)
    assert (memo.get("en", today), memo.get("de", today)) == (None, "de-today")
