-- hftx function library: read-only shard dumps for the midnight snapshot
-- (snapshots/snapshot.py) and the reconciler (snapshots/reconcile.py), and the
-- restore-only writes that rebuild P2P state (snapshots/restore.py).
-- Every call touches ONE hash tag, atomically (a function runs alone).

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

-- snap_apply (restore only): re-apply one recorded account stream entry of P2P
-- balance events. A P2P call cannot be re-issued from the record (its offer and
-- trade snapshots are not in the ledger), so its balance legs are applied as such:
-- escrow (available -> escrow), unescrow (escrow -> available), transfer_out
-- (available -> the outbox; its idempotency record ops t:<id> gets the entry id of
-- the original call, like the one p2p_act wrote).
-- KEYS  {u:U}:bal, {u:U}:ev, {u:U}:ops
-- ARGV  the entry's events (JSON array as recorded), the original entry id
-- Returns the id of the entry appended to {u:U}:ev (the events verbatim).
-- Errors (nothing written): INVALID_PARAM (unknown kind, malformed), INSUFFICIENT_FUNDS
--   (a balance would go below zero: the record and the snapshot disagree).
local function snap_apply(keys, argv)
  local ok, events = pcall(cjson.decode, argv[1] or '')
  if not ok or type(events) ~= 'table' or #events == 0 then return fail('INVALID_PARAM', 'bad events') end
  if type(argv[2]) ~= 'string' or not string.find(argv[2], '^%d+%-%d+$') then
    return fail('INVALID_PARAM', 'bad entry id')
  end
  local delta, fields, outs = {}, {}, {}
  local function add(field, n)
    if delta[field] == nil then
      delta[field] = 0
      fields[#fields + 1] = field
    end
    delta[field] = delta[field] + n
  end
  for _, e in ipairs(events) do
    local a, n = e.asset, e.amount
    if type(a) ~= 'string' or not string.find(a, '^[A-Z0-9]+$') or type(n) ~= 'number'
      or n < 1 or n > MAX_INT or n ~= math.floor(n) or not valid_id(e.id) then
      return fail('INVALID_PARAM', 'bad event')
    end
    if e.e == 'escrow' then
      add(a .. ':a', -n)
      add(a .. ':e', n)
    elseif e.e == 'unescrow' then
      add(a .. ':e', -n)
      add(a .. ':a', n)
    elseif e.e == 'transfer_out' and valid_id(e.to) and type(e.ts) == 'number' then
      add(a .. ':a', -n)
      outs[#outs + 1] = e
    else
      return fail('INVALID_PARAM', 'not a P2P balance event: ' .. tostring(e.e))
    end
  end
  for _, f in ipairs(fields) do
    local v = tonumber(redis.call('HGET', keys[1], f) or '0')
    if v + delta[f] < 0 then return fail('INSUFFICIENT_FUNDS', f .. ' would go below zero') end
  end
  -- validated: writes start here
  for _, f in ipairs(fields) do
    if delta[f] ~= 0 then redis.call('HINCRBY', keys[1], f, fmt(delta[f])) end
  end
  for _, e in ipairs(outs) do
    redis.call('HSET', keys[3], 't:' .. e.id,
      string.format('%s|%s|%s|%s|%s', e.asset, fmt(e.amount), e.to, argv[2], fmt(e.ts)))
  end
  return redis.call('XADD', keys[2], '*', 'e', argv[1])
end

-- snap_p2p_put (restore only): write an offer or trade record as the drain stored
-- it (its latest version), unless the record in Redis is as new already. Fields are
-- formatted exactly as lua/30_p2p.lua writes them; an offer's reservation fields
-- r:<trade id> are left alone.
-- KEYS  {u:U}:p2p:o:<id> or {u:U}:p2p:t:<id>
-- ARGV  'offer'|'trade', the record as a JSON object (record field names,
--       integers as numbers, methods as a JSON array)
-- Returns 1 if written, 0 if the record in Redis has this version or a newer one.
-- Errors (nothing written): INVALID_PARAM.
local function snap_p2p_put(keys, argv)
  local kind = argv[1]
  local ok, r = pcall(cjson.decode, argv[2] or '')
  if not ok or type(r) ~= 'table' then return fail('INVALID_PARAM', 'bad record') end
  local ints, strs, mid = P2P_OFFER_INT, P2P_OFFER_STR, ':p2p:o:'
  if kind == 'trade' then
    ints, strs, mid = P2P_TRADE_INT, P2P_TRADE_STR, ':p2p:t:'
  elseif kind ~= 'offer' then
    return fail('INVALID_PARAM', 'kind must be offer or trade')
  end
  if not valid_id(r.id) or string.sub(keys[1], -(#mid + #r.id)) ~= mid .. r.id then
    return fail('INVALID_PARAM', 'record id and key differ')
  end
  for _, f in ipairs(ints) do
    local n = r[f]
    if n == nil or n == cjson.null then n = 0 end
    if type(n) ~= 'number' or n < 0 or n > MAX_INT or n ~= math.floor(n) then
      return fail('INVALID_PARAM', 'bad ' .. f)
    end
    r[f] = n
  end
  for _, f in ipairs(strs) do
    if r[f] == nil or r[f] == cjson.null then r[f] = '' end
    if type(r[f]) ~= 'string' then return fail('INVALID_PARAM', 'bad ' .. f) end
  end
  r.methods = p2p.methods(cjson.encode(r.methods))
  if not r.methods then return fail('INVALID_PARAM', 'bad methods') end
  local v = tonumber(redis.call('HGET', keys[1], 'v') or '-1')
  if v >= r.v then return 0 end
  p2p.write(keys[1], r, ints, strs, {'methods'})
  return 1
end

-- snap_p2p_msgs (restore only): append a trade's recorded messages that its thread
-- does not have yet (message n goes in when the thread has n - 1), formatted as
-- p2p_msg_post formats them.
-- KEYS  {u:S}:p2p:m:<trade id>
-- ARGV  JSON array of {n, trade, from, role, ts, body}, by n
-- Returns how many messages were appended.
-- Errors (nothing written): INVALID_PARAM.
local function snap_p2p_msgs(keys, argv)
  local ok, msgs = pcall(cjson.decode, argv[1] or '')
  if not ok or type(msgs) ~= 'table' then return fail('INVALID_PARAM', 'bad messages') end
  for _, m in ipairs(msgs) do
    if type(m.n) ~= 'number' or type(m.ts) ~= 'number' or type(m.body) ~= 'string'
      or not valid_id(m.trade) or not valid_id(m.from) or type(m.role) ~= 'string'
      or not string.find(m.role, '^[a-z]+$') or string.sub(keys[1], -(#m.trade + 7)) ~= ':p2p:m:' .. m.trade then
      return fail('INVALID_PARAM', 'bad message')
    end
  end
  local n, added = redis.call('LLEN', keys[1]), 0
  for _, m in ipairs(msgs) do
    if m.n == n + 1 then
      redis.call('RPUSH', keys[1], string.format(
        '{"n":%s,"trade":"%s","from":"%s","role":"%s","ts":%s,"body":%s}',
        fmt(m.n), m.trade, m.from, m.role, fmt(m.ts), cjson.encode(m.body)))
      n, added = n + 1, added + 1
    end
  end
  return added
end

redis.register_function{function_name = 'snap_keys', callback = snap_keys, flags = {'no-writes'}}
redis.register_function{function_name = 'snap_market', callback = snap_market, flags = {'no-writes'}}
redis.register_function('snap_apply', snap_apply)
redis.register_function('snap_p2p_put', snap_p2p_put)
redis.register_function('snap_p2p_msgs', snap_p2p_msgs)
