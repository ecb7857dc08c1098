"""``source.redis``: a time-indexed table from a Redis stream or sorted sets.

Two layouts are read, each by its own reader behind the one op (:mod:`.op`):

* a **stream** (``kind: stream``, :mod:`.streams`): ``XADD key * temperature 61.2 load 48`` —
  the time is the entry id (``<ms>-<seq>``), or a field named by ``time_field`` (ISO text, or
  epoch numbers with ``time_unit``). Entries are read with ``XRANGE`` in batches of ``count``.
* **sorted sets** (``kind: zset``, :mod:`.sorted_sets`): the score is the timestamp (epoch
  seconds or milliseconds, ``score_unit``). With ``key`` one sorted set holds whole rows
  (members are JSON objects of fields, or plain numbers for a single column); with ``keys``
  (column -> key) each column has its own sorted set of plain numbers.

Members of a sorted set are unique, so two equal plain values at different times would be one
member; write ``"<time>:<value>"`` members (the part after the last ``:`` is the value) or
JSON objects that include the time in that case.

The step is **incremental**: the report remembers the last stream id (or score per key), so a
rerun on grown data reads only the newer entries and appends them to the previous table. The
data is assumed to be append-only; a stream or set recreated from scratch (its last id or top
score went backwards) is read again in full. The cache token (``source_state``) is the stream's
last generated id and length, or each sorted set's size and top score, so unchanged data is
served from the step cache without touching the entries.

Members are parsed by :func:`parse_member`:

>>> parse_member('{"temperature": 61.5, "load": "48"}', "value")
{'temperature': 61.5, 'load': '48'}
>>> parse_member("61.5", "temperature"), parse_member("1704067200:48", "load")
({'temperature': 61.5}, {'load': 48.0})
>>> parse_member("not a number", "value") is None
True
"""

from amml.ops.sources.redis.op import RedisSource
from amml.ops.sources.redis.reader import merge_reports
from amml.ops.sources.redis.sorted_sets import parse_member
from amml.ops.sources.redis.streams import stream_id_ms

__all__ = ["RedisSource", "merge_reports", "parse_member", "stream_id_ms"]
