-- hftx function library: read-only shard dumps for the midnight snapshot
-- (snapshots/snapshot.py) and the reconciler (snapshots/reconcile.py).
-- Every call reads ONE hash tag, atomically (a function runs alone).

-- Dump one key: type, pttl and content, or nothing for streams and missing keys.
local function snap_key(out, key)
  local t = redis.call('TYPE', key)['ok']
  local v
  if t == 'hash' then
    v = redis.call('HGETALL', key)
  elseif t == 'set' then
    v = redis.call('SMEMBERS', key)
  elseif t == 'zset' then
    v = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  elseif t == 'string' then
    v = {redis.call('GET', key)}
  elseif t == 'list' then
    v = redis.call('LRANGE', key, 0, -1)
  else
    return -- none, stream: not part of a snapshot
  end
  out[#out + 1] = key
  out[#out + 1] = t
  out[#out + 1] = redis.call('PTTL', key)
  out[#out + 1] = v
end

local function last_entry_id(stream)
  if stream == nil or stream == '' then return '' end
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #last == 0 then return '' end
  return last[1][1]
end

-- snap_keys: dump keys of one hash tag.
-- KEYS  the keys to dump (same hash tag), including the stream named in ARGV
-- ARGV  a stream key among KEYS whose last entry id to report ('' = none)
-- Returns {last entry id or '', key, type, pttl, content, key, type, pttl, content, ...}
--   where content is the flat HGETALL / SMEMBERS / ZRANGE WITHSCORES / {GET} / LRANGE;
--   missing keys and streams are left out.
local function snap_keys(keys, argv)
  local out = {last_entry_id(argv[1])}
  for i = 1, #keys do snap_key(out, keys[i]) end
  return out
end

-- snap_market: dump a market's book with its open orders, and other keys of its tag.
-- KEYS[1] {m:X}:cfg, then any other keys of the tag to dump (e.g. client order id index)
-- ARGV  none
-- Returns as snap_keys (first element: the market seq, '' if the market does not
--   exist): cfg, bids, asks, lv:b, lv:a, d, the record {m:X}:o:<id> of every order on
--   the book (member '<seq>|<id>'), then KEYS[2..].
local function snap_market(keys, argv)
  local P = string.sub(keys[1], 1, #keys[1] - 3)
  local seq = redis.call('HGET', keys[1], 'seq')
  local out = {seq or ''}
  for _, k in ipairs({'cfg', 'bids', 'asks', 'lv:b', 'lv:a', 'd'}) do snap_key(out, P .. k) end
  for _, side in ipairs({'bids', 'asks'}) do
    local members = redis.call('ZRANGE', P .. side, 0, -1)
    for i = 1, #members do
      local id = string.match(members[i], '|(.+)$')
      if id then snap_key(out, P .. 'o:' .. id) end
    end
  end
  for i = 2, #keys do snap_key(out, keys[i]) end
  return out
end

redis.register_function{function_name = 'snap_keys', callback = snap_keys, flags = {'no-writes'}}
redis.register_function{function_name = 'snap_market', callback = snap_market, flags = {'no-writes'}}
