"""The shared provider budget in Redis (`BUNCH_BUDGET_BACKEND=redis`): the same rules as
the database's (generation/budget.py), each take or release one Lua script, so atomic
across every worker process on every host without a row lock.

Keys, under `BUNCH_BUDGET_REDIS_PREFIX`, per model:

- `inflight:<model>`: sorted set of leases in flight, member `id|tenant|reserved`, score
  the lease's expiry (epoch s). A take first drops the expired ones: a killed worker's
  slots come back when their lease runs out.
- `started:<model>`: lease ids by start time, the last 60 s (the RPM window, kept with
  no RPM limit too, for operators).
- `spend:<model>`: `id|nanos` by start time, the last 600 s (the spend window).
- `cooldown:<model>`: the epoch second until which no slot is given out (after a 429).
- `calls:<model>`: calls started per holder (worker process), kept a day.
- `lease`: lease id → its in-flight key and member, for releasing by id; `seq`: lease ids;
  `models`: the models seen.

Times come from the caller (`now`), as in the database backend: hosts' clocks must agree
to well under a lease (NTP does).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from django.conf import settings

_clients = threading.local()

_TAKE = """
local now, lease_s = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_in, rpm, spend_cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local holder, model = ARGV[6], ARGV[7]
local i = 8
local reserving = {}
local nres = tonumber(ARGV[i]); i = i + 1
for _ = 1, nres do reserving[ARGV[i]] = tonumber(ARGV[i + 1]); i = i + 2 end
local nasks = tonumber(ARGV[i]); i = i + 1
local asks = {}
for k = 1, nasks do asks[k] = {ARGV[i], tonumber(ARGV[i + 1])}; i = i + 2 end
local leases = {}
for k = 1, nasks do leases[k] = 0 end

local cooldown = tonumber(redis.call('GET', KEYS[4]) or '0')
if cooldown > now then
  local out = {tostring(cooldown - now)}
  for k = 1, nasks do out[k + 1] = 0 end
  return out
end
redis.call('SADD', KEYS[8], model)

for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[5], string.match(m, '^[^|]+'))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local total = 0
local on_res = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + 1
  local _, t, r = string.match(m, '^([^|]+)|([^|]*)|(%d)$')
  if r == '1' then on_res[t] = (on_res[t] or 0) + 1 end
end

local calls = nil
local retry_in = 0.05
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
if rpm > 0 then
  calls = rpm - redis.call('ZCARD', KEYS[2])
  if calls <= 0 then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    retry_in = math.max(0.05, tonumber(oldest[2]) + 60 - now)
  end
end
local spend = nil
if spend_cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 600)
  local spent = 0
  for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    spent = spent + tonumber(string.match(m, '|(%d+)$'))
  end
  spend = spend_cap - spent
end

-- Slots that reserving tenants may still claim: nobody else takes them.
local protected = 0
for t, r in pairs(reserving) do protected = protected + math.max(0, r - (on_res[t] or 0)) end
local function own(t) return (on_res[t] or 0) < (reserving[t] or 0) end
local order = {}
for k = 1, nasks do if own(asks[k][1]) then order[#order + 1] = k end end
for k = 1, nasks do if not own(asks[k][1]) then order[#order + 1] = k end end

local taken = 0
for _, k in ipairs(order) do
  local t, cost = asks[k][1], asks[k][2]
  if max_in > 0 and total >= max_in then break end
  if calls ~= nil and calls <= 0 then break end
  if spend == nil or cost <= spend then
    local reserved = own(t)
    if reserved or not (max_in > 0 and total + protected >= max_in) then
      if reserved then
        on_res[t] = (on_res[t] or 0) + 1
        protected = protected - 1
      end
      total = total + 1
      if calls ~= nil then calls = calls - 1 end
      if spend ~= nil then spend = spend - cost end
      local id = redis.call('INCR', KEYS[6])
      local member = id .. '|' .. t .. '|' .. (reserved and '1' or '0')
      redis.call('ZADD', KEYS[1], now + lease_s, member)
      redis.call('HSET', KEYS[5], id, KEYS[1] .. '\\n' .. member)
      redis.call('ZADD', KEYS[2], now, id)
      if spend_cap > 0 then
        redis.call('ZADD', KEYS[3], now, id .. '|' .. string.format('%d', cost))
      end
      leases[k] = id
      taken = taken + 1
    end
  end
end
if taken > 0 then
  redis.call('HINCRBY', KEYS[7], holder, taken)
  redis.call('EXPIRE', KEYS[7], 86400)
end
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], math.ceil(lease_s) + 700) end
local out = {tostring(retry_in)}
for k = 1, nasks do out[k + 1] = leases[k] end
return out
"""

_RELEASE = """
local released = 0
for _, id in ipairs(ARGV) do
  local v = redis.call('HGET', KEYS[1], id)
  if v then
    local key, member = string.match(v, '^(.-)\\n(.*)$')
    released = released + redis.call('ZREM', key, member)
    redis.call('HDEL', KEYS[1], id)
  end
end
return released
"""

_COOLDOWN = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_s = tonumber(ARGV[1])
if until_s > current then
  local ttl = math.max(1, math.ceil(until_s - tonumber(ARGV[2])) + 60)
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
  return ARGV[1]
end
return tostring(current)
"""


def _client() -> Any:
    """One client per thread and URL (a client shared by threads opening their first
    connections at once misbehaved in tenants/ratelimit.py)."""
    url = settings.BUNCH_BUDGET_REDIS_URL
    cached = getattr(_clients, "by_url", None)
    if cached is None:
        cached = _clients.by_url = {}
    if url not in cached:
        import redis

        client = redis.Redis.from_url(url)
        cached[url] = (
            client,
            client.register_script(_TAKE),
            client.register_script(_RELEASE),
            client.register_script(_COOLDOWN),
        )
    return cached[url]


def _key(*parts: str) -> str:
    return settings.BUNCH_BUDGET_REDIS_PREFIX + ":".join(parts)


def _model_keys(model: str) -> list[str]:
    return [
        _key("inflight", model),
        _key("started", model),
        _key("spend", model),
        _key("cooldown", model),
        _key("lease"),
        _key("seq"),
        _key("calls", model),
        _key("models"),
    ]


def take(
    *,
    model: str,
    holder: str,
    asks: list[tuple[int, int]],
    reserving: dict[int, int],
    in_flight: int,
    rpm: int,
    spend_nanos: int,
    lease_s: float,
    now: dt.datetime,
) -> tuple[list[int | None], float]:
    """Lease ids (None: no slot) for `asks` (tenant id, list price in nanos), and the
    seconds after which to ask again."""
    _, script, _, _ = _client()
    args: list[Any] = [now.timestamp(), lease_s, in_flight, rpm, spend_nanos, holder, model]
    args.append(len(reserving))
    for tenant_id, reserved in reserving.items():
        args += [str(tenant_id), reserved]
    args.append(len(asks))
    for tenant_id, cost in asks:
        args += [str(tenant_id), int(cost)]
    out = script(keys=_model_keys(model), args=args)
    retry_in = float(out[0])
    return [int(lease) or None for lease in out[1:]], retry_in


def release(*, lease_ids: list[int]) -> None:
    if lease_ids:
        _, _, script, _ = _client()
        script(keys=[_key("lease")], args=[str(i) for i in lease_ids])


def cooldown_start(*, model: str, until: dt.datetime, now: dt.datetime) -> dt.datetime:
    _, _, _, script = _client()
    value = script(keys=[_key("cooldown", model)], args=[repr(until.timestamp()), now.timestamp()])
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def cooldown_until(model: str) -> dt.datetime | None:
    client = _client()[0]
    value = client.get(_key("cooldown", model))
    return dt.datetime.fromtimestamp(float(value), dt.UTC) if value else None


def in_use(*, now: dt.datetime) -> dict[str, int]:
    client = _client()[0]
    models = sorted(m.decode() for m in client.smembers(_key("models")))
    counts = {m: client.zcount(_key("inflight", m), f"({now.timestamp()}", "+inf") for m in models}
    return {m: n for m, n in counts.items() if n}


def leases_in_flight(*, model: str, now: dt.datetime) -> list[tuple[int, int | None, bool]]:
    client = _client()[0]
    members = client.zrangebyscore(_key("inflight", model), f"({now.timestamp()}", "+inf")
    rows: list[tuple[int, int | None, bool]] = []
    for member in members:
        lease_id, tenant_id, reserved = member.decode().split("|")
        rows.append((int(lease_id), int(tenant_id), reserved == "1"))
    return rows


def calls_started_since(*, model: str, since: dt.datetime) -> int:
    """Calls of the model started after `since` (the RPM window keeps the last 60 s)."""
    client = _client()[0]
    return int(client.zcount(_key("started", model), f"({since.timestamp()}", "+inf"))


def calls_by_holder(model: str) -> dict[str, int]:
    client = _client()[0]
    rows = client.hgetall(_key("calls", model))
    return {k.decode(): int(v) for k, v in rows.items()}


def forget_all() -> None:
    """Drop every key under the prefix (tests, each with a prefix of its own)."""
    client = _client()[0]
    keys = list(client.scan_iter(match=settings.BUNCH_BUDGET_REDIS_PREFIX + "*", count=500))
    if keys:
        client.delete(*keys)
