"""The job-outcome samples of one BullMQ queue, and their words (docs/checks/bullmq.md).

Rates are jobs per minute over the whole `window`, whatever part of it the agent has seen
(N failures in a 5m window read as N/5 per minute from the first run on), so a restart
never inflates them. A window with entries trimmed before they were read says so in
every figure it feeds: the counts are then lower bounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from probe.checks.bullmq_events import OTHER, REASON_CHARS, QueueOutcomes, Slice
from probe.core.model import Sample, Unit
from probe.core.redact import redact_url
from probe.core.units import format_duration

TOP_REASONS = 3
LOWER_BOUND = "events lost: counts are lower bounds"


def outcome_samples(
    queue: str,
    outcomes: QueueOutcomes,
    window: float,
    min_jobs: int,
    redact: Callable[[str], str],
) -> list[Sample]:
    seen = outcomes.in_window()
    per_minute = 60 / window
    span = format_duration(window)
    lost = f"{seen.lost:,} {LOWER_BOUND}" if seen.lost else ""
    reasons = top_reasons(seen.reasons, redact)
    failed_words = _join(f"{seen.failed:,} in {span}", reasons, lost)
    samples = [
        Sample("completed_rate", seen.completed * per_minute, Unit.COUNT, queue, lost),
        Sample(
            "failed_rate",
            seen.failed * per_minute,
            Unit.COUNT,
            queue,
            failed_words,
            note_explains=True,
        ),
        Sample(
            "stalled_rate", seen.stalled * per_minute, Unit.COUNT, queue, lost, note_explains=True
        ),
        _failure_ratio(queue, seen, span, min_jobs, reasons, lost),
        Sample(
            "events_lost",
            seen.lost,
            Unit.COUNT,
            queue,
            "the events stream was trimmed before they were read" if seen.lost else "",
            note_explains=True,
        ),
    ]
    for outcome in ("completed", "failed", "stalled"):
        samples.append(Sample(f"{outcome}_total", outcomes.totals[outcome], Unit.COUNT, queue))
    samples.append(Sample("events_lost_total", outcomes.totals["lost"], Unit.COUNT, queue))
    return samples


# Per queue, from the events stream and the schedulers: what can take a threshold.
OUTCOME_MEASURES: tuple[str, ...] = (
    "completed_rate",
    "failed_rate",
    "stalled_rate",
    "failure_ratio",
    "events_lost",
    "schedulers_late",
    "delayed_overdue",
)


def unknown_outcome_samples(queue: str, why: str) -> list[Sample]:
    """The outcome figures when the events could not be read: unknown, never zero."""
    return [
        Sample(
            measure,
            None,
            Unit.RATIO if measure == "failure_ratio" else Unit.COUNT,
            queue,
            why,
            unknown_warns=True,
        )
        for measure in OUTCOME_MEASURES
    ]


def _failure_ratio(
    queue: str, seen: Slice, span: str, min_jobs: int, reasons: str, lost: str
) -> Sample:
    finished = seen.completed + seen.failed
    if finished < min_jobs:
        note = f"{finished:,} finished in {span}, fewer than min_jobs {min_jobs:,}"
        return Sample("failure_ratio", None, Unit.RATIO, queue, note)
    words = _join(f"{seen.failed:,} of {finished:,} in {span}", reasons, lost)
    return Sample(
        "failure_ratio", seen.failed / finished, Unit.RATIO, queue, words, note_explains=True
    )


def top_reasons(reasons: Counter[str], redact: Callable[[str], str]) -> str:
    """`"131047 re-engagement" x18, "timed out" x5`: the most frequent failedReason
    texts, secrets masked, one line, at most 120 characters each."""
    shown: Counter[str] = Counter()
    for text, count in reasons.items():
        if text != OTHER:
            shown[clean_reason(text, redact)] += count
    ranked = sorted(shown.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    return ", ".join(f'"{text}" x{count:,}' for text, count in ranked)


def clean_reason(text: str, redact: Callable[[str], str]) -> str:
    # Control characters (NUL, ESC, DEL) of a reason would reach logs, alerts and pages.
    printable = "".join(c if c.isprintable() else " " for c in text)
    one_line = " ".join(redact(redact_url(printable)).split())
    if not one_line:
        return "(no reason given)"
    if len(one_line) > REASON_CHARS:
        return one_line[: REASON_CHARS - 1] + "\u2026"
    return one_line


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def schedule_samples(
    queue: str, late: int, late_names: tuple[str, ...], overdue: int
) -> list[Sample]:
    named = ", ".join(late_names) + (", ..." if late > len(late_names) else "")
    return [
        Sample("schedulers_late", late, Unit.COUNT, queue, named, note_explains=True),
        Sample("delayed_overdue", overdue, Unit.COUNT, queue),
    ]


def expected_scheduler_samples(
    component: str,
    next_run: float | None,
    last_success: float | None,
    now: float,
    watching_since: float,
) -> list[Sample]:
    """`last_success_age` of one expected scheduler, and the two timestamps of its series.

    With no completed run seen (none in the stream when the agent started, none since),
    the age counts from when the agent started watching: a lower bound that still
    crosses `max_age` if the scheduler never completes again.
    """
    if last_success is not None:
        age = Sample("last_success_age", max(now - last_success, 0.0), Unit.SECONDS, component)
    else:
        age = Sample(
            "last_success_age",
            max(now - watching_since, 0.0),
            Unit.SECONDS,
            component,
            "no completed run seen since the agent started",
            note_explains=True,
        )
    return [
        age,
        Sample("next_run_timestamp", next_run, Unit.NONE, component, "" if next_run else MISSING),
        Sample("last_success_timestamp", last_success, Unit.NONE, component),
    ]


MISSING = "no such job scheduler"
