"""Lua scripts that make multi-key steps atomic, each in one round trip.

Every key a script touches shares the user's hash tag, so each script runs on
a single Redis Cluster slot. Times are epoch milliseconds passed in by the
caller, so one injectable clock rules both Python and Lua.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["CREATE", "INVALIDATE", "INVALIDATE_USER", "RENEW", "Script"]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script with its SHA-1, for ``EVALSHA`` with an ``EVAL`` fallback."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode("utf-8"), usedforsecurity=False)
        object.__setattr__(self, "sha", digest.hexdigest())


# Shared tail: drop index members whose idle expiry has passed, then let the
# index itself expire with its longest-lived member.
_TRIM_INDEX = """
local function trim_index(index, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', index, last[2])
  end
end
"""

#: KEYS[1] session key, KEYS[2] user index.
#: ARGV[1] record, ARGV[2] idle expiry, ARGV[3] token digest, ARGV[4] now.
#: Returns 1.
CREATE = Script(
    "create",
    _TRIM_INDEX
    + """
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
trim_index(KEYS[2], ARGV[4])
return 1
""",
)

#: KEYS[1] old session key, KEYS[2] successor key, KEYS[3] user index.
#: ARGV[1] now, ARGV[2] old check, ARGV[3] successor check,
#: ARGV[4] successor active expiry in base 36, ARGV[5] successor idle expiry,
#: ARGV[6] old digest, ARGV[7] successor digest,
#: ARGV[8] renewed record for the old key, or '' to delete the old key,
#: ARGV[9] end of the grace window, ARGV[10] ARGV[5] in base 36.
#: Times are epoch milliseconds in decimal unless marked base 36, the form
#: records store them in.
#: Returns {'renewed', successor record}, {'replay', renewed record} when the
#: old token was renewed already, or false when the session is dead or unknown.
RENEW = Script(
    "renew",
    _TRIM_INDEX
    + """
local record = redis.call('GET', KEYS[1])
if not record then
  return false
end
if string.sub(record, 1, 2) == '2|' then
  return {'replay', record}
end
local check, created, idle, payload =
  string.match(record, '^1|([^|]*)|(%w+)|%w+|(%w+)|(.*)$')
if check ~= ARGV[2] or tonumber(idle, 36) <= tonumber(ARGV[1]) then
  return false
end
local fresh = '1|' .. ARGV[3] .. '|' .. created .. '|' .. ARGV[4] .. '|'
  .. ARGV[10] .. '|' .. payload
redis.call('SET', KEYS[2], fresh, 'PXAT', ARGV[5])
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[1], ARGV[8], 'PXAT', ARGV[9])
else
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[7])
trim_index(KEYS[3], ARGV[1])
return {'renewed', fresh}
""",
)

#: KEYS[1] session key, KEYS[2] user index. ARGV[1] token digest, ARGV[2] now.
#: Returns false when the key did not exist, the successor digest when the key
#: held a renewed record (so the caller removes the successor too), else 1.
INVALIDATE = Script(
    "invalidate",
    _TRIM_INDEX
    + """
local record = redis.call('GET', KEYS[1])
if not record then
  return false
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
trim_index(KEYS[2], ARGV[2])
if string.sub(record, 1, 2) == '2|' then
  return string.match(record, '^2|[^|]*|%d+|([^|]*)|') or 1
end
return 1
""",
)

#: KEYS[1] user index, KEYS[2..k+1] the keys of the k sessions to delete.
#: ARGV[1] now, ARGV[2] the number n of digests the caller read from the index,
#: ARGV[3..n+2] those digests, ARGV[n+3..n+k+2] the digests of KEYS[2..k+1].
#: The index is shared by every user whose tag is the same, so the caller
#: names only the sessions whose records carry its user id. The script deletes
#: them only if the index still contains exactly the n digests the caller read,
#: and returns the number of session keys deleted, or -1 when the index
#: changed since the caller read it.
INVALIDATE_USER = Script(
    "invalidate_user",
    _TRIM_INDEX
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local read = tonumber(ARGV[2])
if redis.call('ZCARD', KEYS[1]) ~= read then
  return -1
end
for i = 3, read + 2 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    return -1
  end
end
local removed = 0
for i = 2, #KEYS do
  removed = removed + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], ARGV[read + 1 + i])
end
trim_index(KEYS[1], ARGV[1])
return removed
""",
)
