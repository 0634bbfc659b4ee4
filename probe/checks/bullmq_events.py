"""Job outcomes of a BullMQ queue, read from its events stream by a read-only script.

BullMQ writes `completed` / `failed` only for final outcomes (a retried attempt writes
`delayed` or `waiting`), `stalled` for each stall recovery, and it writes them whatever
`removeOnComplete` / `removeOnFail` say (tests/test_bullmq_outcomes.py shows it on a
real BullMQ).
So the stream, read on from the last entry seen, counts what happened to every job.

Why a script (`EVALSHA_RO`) rather than `XREAD`: `completed` entries carry the job's whole
return value, unbounded, and XREAD cannot leave a field out. The script walks the new
entries on the server in small pages and returns only counts, the few most frequent
`failedReason` texts (cut to a byte bound) and scheduler facts, so the bytes read per
run stay a few KiB however large the return values are, in the same pipelined round trip
as the queue counts. It only reads; it needs Redis 7 (`EVALSHA_RO`, XINFO `entries-added`).
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Per run and queue, at most this many entries are walked on the server (about 5 us
# each, so at most ~50 ms of Redis time in one script call); a queue that produced more
# since the last run is caught up over the next runs, or reports the entries BullMQ
# trimmed meanwhile as lost. It equals BullMQ's default stream length.
ENTRIES_PER_RUN = 10_000
# Entries per XRANGE inside the script: bounds the script's memory when each entry
# holds a large return value (100 entries x 100 KB = 10 MB at worst).
PAGE = 100
# failedReason bytes kept per distinct text (120 characters of any script fit in 480).
REASON_BYTES = 480
REASON_CHARS = 120
# Distinct reasons returned per queue and run; the rest are counted as "other".
REASONS_PER_RUN = 10

# KEYS: events stream, repeat ZSET, delayed ZSET.
# ARGV: last id ('' starts a fresh window at the stream's end), entries added up to and
# including the last id, entry budget, page size, now ms, grace ms, reason bytes, reasons
# returned, queue key prefix ("bull:email:"), scan back for expected schedulers (1/0),
# then the ids of the expected schedulers.
SCRIPT = r"""
local events, repeat_key, delayed = KEYS[1], KEYS[2], KEYS[3]
local last, added_at_last = ARGV[1], tonumber(ARGV[2])
local budget, page = tonumber(ARGV[3]), tonumber(ARGV[4])
local now, grace = tonumber(ARGV[5]), tonumber(ARGV[6])
local reason_bytes, top_n = tonumber(ARGV[7]), tonumber(ARGV[8])
local prefix, backscan = ARGV[9], ARGV[10] == '1'
local expected, expected_ids = {}, {}
for i = 11, #ARGV do expected[ARGV[i]] = true; table.insert(expected_ids, ARGV[i]) end

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function later(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  if am ~= bm then return am > bm end
  return as > bs
end
-- Cut at a character boundary: a reply that is not UTF-8 cannot be decoded.
local function cut(text, n)
  if #text <= n then return text end
  local i = n
  while i > 0 do
    local b = string.byte(text, i + 1)
    if b < 0x80 or b >= 0xC0 then break end
    i = i - 1
  end
  return string.sub(text, 1, i)
end
local function scheduler_of(job_id)
  if not job_id then return nil end
  return string.match(job_id, '^repeat:(.+):%d+$')
end
local function fields_of(entry)
  local event, job, reason
  local f = entry[2]
  for i = 1, #f, 2 do
    local name = f[i]
    if name == 'event' then event = f[i + 1]
    elseif name == 'jobId' then job = f[i + 1]
    elseif name == 'failedReason' then reason = f[i + 1] end
  end
  return event, job, reason
end

local info = {}
if redis.call('EXISTS', events) == 1 then
  local raw = redis.call('XINFO', 'STREAM', events)
  for i = 1, #raw, 2 do info[raw[i]] = raw[i + 1] end
end
local length = tonumber(info['length'] or 0)
local added = tonumber(info['entries-added'] or 0)
local top = info['last-generated-id'] or '0-0'
local first = info['recorded-first-entry-id'] or '0-0'

local completed, failed, stalled, lost, read, other = 0, 0, 0, 0, 0, 0
local reasons, distinct = {}, 0
local successes = {}
local fresh = 0

if last == '' then
  -- A fresh window starts at the end: nothing that happened before is counted.
  fresh = 1
  last, added_at_last = top, added
  if backscan and #expected_ids > 0 and length > 0 then
    local cursor, missing, scanned = '+', #expected_ids, 0
    while missing > 0 and scanned < budget do
      local entries = redis.call('XREVRANGE', events, cursor, '-', 'COUNT', page)
      for _, entry in ipairs(entries) do
        local event, job = fields_of(entry)
        local s = scheduler_of(job)
        if event == 'completed' and s and expected[s] and not successes[s] then
          successes[s] = entry[1]
          missing = missing - 1
        end
      end
      scanned = scanned + #entries
      if #entries < page then break end
      cursor = '(' .. entries[#entries][1]
    end
  end
else
  if added < added_at_last then
    -- Fewer entries ever added than we had seen: the stream was deleted and made anew.
    last, added_at_last = '0-0', 0
  end
  if length == 0 or later(first, last) then
    -- Trimmed past the last entry we read: whatever was added after it and is not
    -- there any more was never read.
    lost = added - added_at_last - length
    if lost < 0 then lost = 0 end
  end
  local cursor = '(' .. last
  while read < budget do
    local want = math.min(page, budget - read)
    local entries = redis.call('XRANGE', events, cursor, '+', 'COUNT', want)
    for _, entry in ipairs(entries) do
      local event, job, reason = fields_of(entry)
      if event == 'completed' then
        completed = completed + 1
        local s = scheduler_of(job)
        if s and expected[s] then successes[s] = entry[1] end
      elseif event == 'failed' then
        failed = failed + 1
        local text = cut(reason or '', reason_bytes)
        if reasons[text] then
          reasons[text] = reasons[text] + 1
        elseif distinct < 1000 then
          reasons[text] = 1
          distinct = distinct + 1
        else
          other = other + 1
        end
      elseif event == 'stalled' then
        stalled = stalled + 1
      end
      last = entry[1]
    end
    read = read + #entries
    if #entries < want then break end
    cursor = '(' .. last
  end
  added_at_last = added_at_last + lost + read
end

local ranked = {}
for text, n in pairs(reasons) do table.insert(ranked, {text, n}) end
table.sort(ranked, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)
local top_reasons = {}
for i, item in ipairs(ranked) do
  if i <= top_n then
    table.insert(top_reasons, item[1])
    table.insert(top_reasons, item[2])
  else
    other = other + item[2]
  end
end

local overdue_before = now - grace
local late, late_names = 0, {}
local due = redis.call('ZRANGEBYSCORE', repeat_key, '-inf', '(' .. overdue_before,
  'LIMIT', 0, 1000)
for _, sid in ipairs(due) do
  local meta = redis.call('HMGET', prefix .. 'repeat:' .. sid, 'limit', 'ic', 'endDate')
  local limit, ic, end_date = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
  -- A schedule that reached its limit or end date is finished, not late.
  local finished = (limit and limit > 0 and ic and ic >= limit)
    or (end_date and end_date > 0 and end_date < now)
  if not finished then
    late = late + 1
    if #late_names < 5 then table.insert(late_names, sid) end
  end
end
local overdue = redis.call('ZCOUNT', delayed, 0,
  '(' .. string.format('%.0f', overdue_before * 4096))

local success_flat = {}
for sid, id in pairs(successes) do
  table.insert(success_flat, sid)
  table.insert(success_flat, id)
end
local next_runs = {}
for _, sid in ipairs(expected_ids) do
  table.insert(next_runs, redis.call('ZSCORE', repeat_key, sid) or '')
end

local behind = 0
if fresh == 0 and last ~= top and read >= budget then behind = 1 end
return {last, tostring(added_at_last), lost, read, behind, completed, failed, stalled,
  other, top_reasons, late, late_names, overdue, success_flat, next_runs}
"""

# Redis names a cached script by the SHA-1 of its text.
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Reading:
    """What one script call returned for one queue."""

    last_id: str
    added_at_last: int
    lost: int
    read: int
    behind: bool
    completed: int
    failed: int
    stalled: int
    reasons: Counter[str]
    schedulers_late: int
    late_names: tuple[str, ...]
    delayed_overdue: int
    # scheduler id -> unix seconds (Redis clock) of its newest completed iteration seen
    successes: dict[str, float]
    # expected scheduler id -> unix seconds of its pending iteration, None when missing
    next_runs: dict[str, float | None]


def script_args(
    cursor: Cursor,
    now: float,
    grace: float,
    key_prefix: str,
    expected: Sequence[str],
) -> list[Any]:
    """KEYS and ARGV of one script call, after the key count."""
    return [
        3,
        key_prefix + "events",
        key_prefix + "repeat",
        key_prefix + "delayed",
        cursor.last_id,
        cursor.added_at_last,
        ENTRIES_PER_RUN,
        PAGE,
        int(now * 1000),
        int(grace * 1000),
        REASON_BYTES,
        REASONS_PER_RUN,
        key_prefix,
        1 if expected else 0,
        *expected,
    ]


def parse_reading(reply: Sequence[Any], expected: Sequence[str]) -> Reading:
    (
        last_id,
        added,
        lost,
        read,
        behind,
        completed,
        failed,
        stalled,
        other,
        flat_reasons,
        late,
        late_names,
        overdue,
        flat_successes,
        next_runs,
    ) = reply
    reasons: Counter[str] = Counter()
    for i in range(0, len(flat_reasons), 2):
        reasons[str(flat_reasons[i])] += int(flat_reasons[i + 1])
    if int(other):
        reasons[OTHER] += int(other)
    successes = {
        str(flat_successes[i]): entry_time(str(flat_successes[i + 1]))
        for i in range(0, len(flat_successes), 2)
    }
    return Reading(
        last_id=str(last_id),
        added_at_last=int(added),
        lost=int(lost),
        read=int(read),
        behind=bool(int(behind)),
        completed=int(completed),
        failed=int(failed),
        stalled=int(stalled),
        reasons=reasons,
        schedulers_late=int(late),
        late_names=tuple(str(n) for n in late_names),
        delayed_overdue=int(overdue),
        successes=successes,
        next_runs={
            sid: (float(score) / 1000 if score not in ("", None) else None)
            for sid, score in zip(expected, next_runs, strict=True)
        },
    )


# Reasons past the distinct ones returned are summed under this key.
OTHER = "\x00other"


def entry_time(entry_id: str) -> float:
    """Unix seconds of a stream entry id (`<ms>-<seq>`, from the Redis server's clock)."""
    return int(entry_id.split("-", 1)[0]) / 1000


# ---------------------------------------------------------------- per-queue state


@dataclass(slots=True)
class Cursor:
    """Where reading resumes: the last entry read and how many entries had been added up
    to it (so entries trimmed before they were read can be counted)."""

    last_id: str = ""  # "" until the first run: the window starts where the stream ends
    added_at_last: int = 0


@dataclass(slots=True)
class Slice:
    """The outcomes one run found, kept while it is inside the window."""

    at: float
    completed: int
    failed: int
    stalled: int
    lost: int
    reasons: Counter[str]


@dataclass(slots=True)
class QueueOutcomes:
    """One queue's outcomes since the check object was made: the window of recent runs
    and running totals. A new check object (a restart) starts with nothing to replay."""

    cursor: Cursor = field(default_factory=Cursor)
    slices: deque[Slice] = field(default_factory=deque)
    totals: Counter[str] = field(default_factory=Counter)
    last_success: dict[str, float] = field(default_factory=dict)
    behind: bool = False

    def add(self, reading: Reading, now: float, window: float) -> None:
        self.cursor = Cursor(reading.last_id, reading.added_at_last)
        self.behind = reading.behind
        self.slices.append(
            Slice(
                now,
                reading.completed,
                reading.failed,
                reading.stalled,
                reading.lost,
                reading.reasons,
            )
        )
        horizon = now - window
        while self.slices and self.slices[0].at <= horizon:
            self.slices.popleft()
        self.totals.update(
            completed=reading.completed,
            failed=reading.failed,
            stalled=reading.stalled,
            lost=reading.lost,
        )
        for scheduler, at in reading.successes.items():
            self.last_success[scheduler] = max(at, self.last_success.get(scheduler, at))

    def in_window(self) -> Slice:
        """The window's sums, as one slice."""
        total = Slice(0.0, 0, 0, 0, 0, Counter())
        for part in self.slices:
            total.completed += part.completed
            total.failed += part.failed
            total.stalled += part.stalled
            total.lost += part.lost
            total.reasons.update(part.reasons)
        return total
