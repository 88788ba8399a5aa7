-- hftx function library: peer-to-peer trading with escrow, and notification inboxes.
--
-- An offer lives in its OWNER's account shard; a trade (record, escrow, message
-- thread) in its SELLER's shard, so every call touches one hash tag:
--   {u:U}:bal {u:U}:ev {u:U}:ops  balances, account stream, idempotency records
--                                 (lua/20_accounts.lua)
--   {u:U}:p2p:o:<offer id>  hash  offer: id u side asset fiat price min max amount
--                                 locked filled methods window status cts uts v,
--                                 plus r:<trade id> = amount|taker|price|ts per open trade
--                                 of a BUY offer (its trades live in the sellers' shards)
--   {u:U}:p2p:t:<trade id>  hash  trade: id offer oside seller buyer asset fiat price
--                                 amount fiat_amount methods window status act cts uts
--                                 exp paid_ts dispute_by dispute_reason dispute_ts
--                                 resolution resolved_by v
--   {u:U}:p2p:m:<trade id>  list  message thread, oldest first (JSON objects)
--   {u:U}:p2p:ol            zset  the user's offers (member offer id, score created ms)
--   {u:U}:p2p:tl            zset  the user's trades (member <trade id>|<seller>, score created ms)
--   {u:U}:p2p:rq:<actor>:<request id>  string  'action|target id', 24 h
--   {u:U}:inbox             list  notifications, newest first (capped); each is also a
--                                 `notice` event of {u:U}:ev (ntf_push)
-- Amounts are integers in the asset's minimal units, prices and fiat amounts integer
-- cents of the fiat. Escrow invariant: {u:S}:bal <ASSET>:e == the `amount` of S's
-- OPEN or PAUSED sell offers + the `amount` of S's PENDING, PAID or DISPUTED trades.
-- Every call appends ONE entry to the shard owner's {u:U}:ev: balance events
-- (escrow, unescrow, transfer_out) and record snapshots (p2p_offer, p2p_trade, p2p_msg)
-- for the drain, ntf_push a `notice`; a release emits unescrow + transfer_out (id
-- p2p:<trade id>), the outbox the settler credits the buyer from, exactly once.

local P2P_RQ_TTL_MS = 86400000
local P2P_TOMB_TTL_MS = 7 * 86400000
local P2P_MAX_MSGS = 200
local P2P_MAX_TEXT = 2000 -- bytes (the engine caps characters lower)

local P2P_OFFER_INT = {'price', 'min', 'max', 'amount', 'locked', 'filled', 'window', 'cts', 'uts', 'v'}
local P2P_OFFER_STR = {'id', 'u', 'side', 'asset', 'fiat', 'status'}
local P2P_TRADE_INT = {'price', 'amount', 'fiat_amount', 'window', 'cts', 'uts', 'exp', 'paid_ts',
  'dispute_ts', 'v'}
local P2P_TRADE_STR = {'id', 'offer', 'oside', 'seller', 'buyer', 'asset', 'fiat', 'status', 'act',
  'dispute_by', 'dispute_reason', 'resolution', 'resolved_by'}

-- The trade state machine (engine/p2p_rules.py holds the same table; a test checks
-- that both agree). by: who may act (party = buyer or seller).
local P2P_RULES = {
  paid = {from = {PENDING = true}, to = 'PAID', by = 'buyer'},
  release = {from = {PENDING = true, PAID = true}, to = 'RELEASED', by = 'seller'},
  cancel = {from = {PENDING = true}, to = 'CANCELLED', by = 'buyer'},
  expire = {from = {PENDING = true}, to = 'EXPIRED', by = 'system'},
  dispute = {from = {PAID = true}, to = 'DISPUTED', by = 'party'},
  resolve_release = {from = {DISPUTED = true}, to = 'RELEASED', by = 'admin'},
  resolve_refund = {from = {DISPUTED = true}, to = 'REFUNDED', by = 'admin'},
}
local P2P_ACTIVE = {PENDING = true, PAID = true, DISPUTED = true}
-- what each action does, for the FORBIDDEN message ("only the buyer may <...>")
local P2P_DOES = {
  paid = 'mark this trade paid', release = 'release this trade', cancel = 'cancel this trade',
  expire = 'expire this trade', dispute = 'dispute this trade',
  resolve_release = 'resolve this dispute', resolve_refund = 'resolve this dispute',
}

local p2p = {}

function p2p.prefix(bal_key)
  return string.sub(bal_key, 1, #bal_key - 3)
end

function p2p.owner(P)
  return string.match(P, '^{u:(.+)}:$')
end

function p2p.read(key, int_fields)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  for _, f in ipairs(int_fields) do r[f] = tonumber(r[f] or '0') end
  return r
end

-- Write the fields of record r (reservation fields r:* are written separately).
function p2p.write(key, r, int_fields, str_fields, extra)
  local args = {}
  for _, f in ipairs(int_fields) do
    args[#args + 1] = f
    args[#args + 1] = fmt(r[f])
  end
  for _, f in ipairs(str_fields) do
    args[#args + 1] = f
    args[#args + 1] = r[f] or ''
  end
  for _, f in ipairs(extra or {}) do
    args[#args + 1] = f
    args[#args + 1] = r[f] or ''
  end
  redis.call('HSET', key, unpack(args))
end

function p2p.flat(r, int_fields, str_fields, extra)
  local out = {}
  for _, f in ipairs(int_fields) do
    out[#out + 1] = f
    out[#out + 1] = fmt(r[f])
  end
  for _, f in ipairs(str_fields) do
    out[#out + 1] = f
    out[#out + 1] = r[f] or ''
  end
  for _, f in ipairs(extra or {}) do
    out[#out + 1] = f
    out[#out + 1] = r[f] or ''
  end
  return out
end

-- JSON snapshot event of a record: integers exact, strings escaped by cjson.
function p2p.snapshot(kind, r, int_fields, str_fields, raw_field, ts)
  local parts = {string.format('"e":"%s","ts":%s', kind, fmt(ts))}
  for _, f in ipairs(str_fields) do
    parts[#parts + 1] = string.format('"%s":%s', f, cjson.encode(r[f] or ''))
  end
  for _, f in ipairs(int_fields) do
    parts[#parts + 1] = string.format('"%s":%s', f, fmt(r[f]))
  end
  parts[#parts + 1] = string.format('"%s":%s', raw_field, r[raw_field])
  return '{' .. table.concat(parts, ',') .. '}'
end

function p2p.offer_event(o, ts)
  return p2p.snapshot('p2p_offer', o, P2P_OFFER_INT, P2P_OFFER_STR, 'methods', ts)
end

function p2p.trade_event(t, ts)
  return p2p.snapshot('p2p_trade', t, P2P_TRADE_INT, P2P_TRADE_STR, 'methods', ts)
end

function p2p.offer_flat(o)
  return p2p.flat(o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
end

function p2p.trade_flat(t)
  return p2p.flat(t, P2P_TRADE_INT, P2P_TRADE_STR, {'methods'})
end

function p2p.append(ev_key, items)
  if #items == 0 then return '' end
  return redis.call('XADD', ev_key, '*', 'e', '[' .. table.concat(items, ',') .. ']')
end

function p2p.balance_event(kind, id, asset, amount, reason, ts)
  return string.format('{"e":"%s","ts":%s,"id":"%s","asset":"%s","amount":%s,"reason":"%s"}',
    kind, fmt(ts), id, asset, fmt(amount), reason)
end

function p2p.avail(bal_key, asset)
  local v = redis.call('HGET', bal_key, asset .. ':a')
  return v and tonumber(v) or 0
end

function p2p.escrowed(bal_key, asset)
  local v = redis.call('HGET', bal_key, asset .. ':e')
  return v and tonumber(v) or 0
end

-- Request-id record: nil (unused), true (same request), or an error reply.
function p2p.rq_check(P, actor, rid, action, target)
  if rid == '' then return nil end
  local rec = redis.call('GET', P .. 'p2p:rq:' .. actor .. ':' .. rid)
  if not rec then return nil end
  if rec == action .. '|' .. target then return true end
  return fail('INVALID_PARAM', 'request_id already used for another request')
end

function p2p.rq_set(P, actor, rid, action, target)
  if rid ~= '' then
    redis.call('SET', P .. 'p2p:rq:' .. actor .. ':' .. rid, action .. '|' .. target, 'PX',
      P2P_RQ_TTL_MS)
  end
end

-- The target id a request id was used for (take: the trade id), or nil.
function p2p.rq_target(P, actor, rid, action)
  if rid == '' then return nil end
  local rec = redis.call('GET', P .. 'p2p:rq:' .. actor .. ':' .. rid)
  if not rec then return nil end
  local a, target = string.match(rec, '^([^|]*)|(.*)$')
  if a ~= action then return false end
  return target
end

function p2p.valid_asset(s)
  return type(s) == 'string' and #s >= 2 and #s <= 10 and string.find(s, '^[A-Z0-9]+$') ~= nil
end

function p2p.valid_fiat(s)
  return type(s) == 'string' and string.find(s, '^[A-Z][A-Z][A-Z]$') ~= nil
end

function p2p.valid_rid(s)
  return s == '' or valid_id(s)
end

-- Payment methods: a JSON array of 1..5 non-empty strings; returns canonical JSON or nil.
function p2p.methods(s)
  if type(s) ~= 'string' or #s > P2P_MAX_TEXT then return nil end
  local ok, v = pcall(cjson.decode, s)
  if not ok or type(v) ~= 'table' or #v < 1 or #v > 5 then return nil end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return nil end
  for i = 1, #v do
    if type(v[i]) ~= 'string' or #v[i] == 0 or #v[i] > 200 then return nil end
  end
  local out = {}
  for i = 1, #v do out[i] = cjson.encode(v[i]) end
  return '[' .. table.concat(out, ',') .. ']'
end

-- Offer terms shared by create and update: returns an error reply or nil.
function p2p.check_terms(o)
  if not o.price or o.price < 1 then return fail('INVALID_PARAM', 'price must be a positive integer') end
  if not o.min or o.min < 1 or not o.max or o.max < 1 then
    return fail('INVALID_PARAM', 'limits must be positive integers')
  end
  if o.min > o.max then return fail('INVALID_PARAM', 'min_amount exceeds max_amount') end
  if not o.window or o.window < 1 or o.window > 1440 then
    return fail('INVALID_PARAM', 'payment window must be 1..1440 minutes')
  end
  if not o.methods then return fail('INVALID_PARAM', 'bad payment methods') end
  return nil
end

-- Check that `taker` may take `amount` of offer `o` at `price`: error reply or nil.
function p2p.check_take(o, taker, amount, price)
  if taker == o.u then return fail('INVALID_PARAM', 'cannot take your own offer') end
  if o.status ~= 'OPEN' then return fail('INVALID_PARAM', 'offer is ' .. o.status) end
  if price ~= o.price then return fail('INVALID_PARAM', 'the offer price has changed') end
  if amount < o.min or amount > o.max then
    return fail('INVALID_PARAM', 'amount outside the offer limits')
  end
  if amount > o.amount then return fail('INVALID_PARAM', 'amount exceeds what the offer has left') end
  return nil
end

function p2p.new_trade(id, o, seller, buyer, amount, fiat_amount, now)
  return {id = id, offer = o.id, oside = o.side, seller = seller, buyer = buyer, asset = o.asset,
    fiat = o.fiat, price = o.price, amount = amount, fiat_amount = fiat_amount,
    methods = o.methods, window = o.window, status = 'PENDING', act = 'take', cts = now, uts = now,
    exp = now + o.window * 60000, paid_ts = 0, dispute_ts = 0, v = 1}
end

function p2p.add_trade_index(P, t)
  redis.call('ZADD', P .. 'p2p:tl', t.cts, t.id .. '|' .. t.seller)
end

-- p2p_offer_create: post an offer; a sell offer moves `amount` available -> escrow.
-- KEYS  {u:O}:bal, {u:O}:ev, {u:O}:p2p:o:<offer id>   (O = the owner)
-- ARGV  offer_id, side (sell|buy), asset, fiat, price, min, max, amount, methods JSON,
--       window minutes, now_ms, request_id ('' = none)
-- Returns {'new'|'replay', offer flat fields}.
-- Errors (nothing written): INVALID_PARAM, INSUFFICIENT_FUNDS.
local function p2p_offer_create(keys, argv)
  local P = p2p.prefix(keys[1])
  local owner = p2p.owner(P)
  local id, side, asset, fiat, rid = argv[1], argv[2], argv[3], argv[4], argv[12] or ''
  local o = {id = id, u = owner, side = side, asset = asset, fiat = fiat,
    price = int_arg(argv[5], false), min = int_arg(argv[6], false), max = int_arg(argv[7], false),
    amount = int_arg(argv[8], false), methods = p2p.methods(argv[9]), window = int_arg(argv[10], false),
    locked = 0, filled = 0, status = 'OPEN', v = 1}
  local now = int_arg(argv[11], false)
  if not valid_id(id) or keys[3] ~= P .. 'p2p:o:' .. id then return fail('INVALID_PARAM', 'bad offer id') end
  if side ~= 'sell' and side ~= 'buy' then return fail('INVALID_PARAM', 'side must be sell or buy') end
  if not p2p.valid_asset(asset) then return fail('INVALID_PARAM', 'bad asset') end
  if not p2p.valid_fiat(fiat) then return fail('INVALID_PARAM', 'fiat must be a 3-letter code') end
  if not o.amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  if not p2p.valid_rid(rid) then return fail('INVALID_PARAM', 'bad request_id') end
  local err = p2p.check_terms(o)
  if err then return err end
  if o.min > o.amount then return fail('INVALID_PARAM', 'min_amount exceeds amount') end
  local prev = p2p.rq_target(P, owner, rid, 'offer')
  if prev == false then return fail('INVALID_PARAM', 'request_id already used for another request') end
  if prev then
    local existing = p2p.read(P .. 'p2p:o:' .. prev, P2P_OFFER_INT)
    if existing then return {'replay', p2p.offer_flat(existing)} end
  end
  local existing = p2p.read(keys[3], P2P_OFFER_INT)
  if existing then
    if existing.side ~= side or existing.asset ~= asset or existing.fiat ~= fiat then
      return fail('INVALID_PARAM', 'offer id already used')
    end
    return {'replay', p2p.offer_flat(existing)}
  end
  if side == 'sell' and p2p.avail(keys[1], asset) < o.amount then
    return fail('INSUFFICIENT_FUNDS', 'insufficient ' .. asset .. ' to escrow')
  end
  -- validated: writes start here
  o.cts, o.uts = now, now
  local items = {}
  if side == 'sell' then
    redis.call('HINCRBY', keys[1], asset .. ':a', -o.amount)
    redis.call('HINCRBY', keys[1], asset .. ':e', o.amount)
    items[1] = p2p.balance_event('escrow', id, asset, o.amount, 'offer', now)
  end
  p2p.write(keys[3], o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
  redis.call('ZADD', P .. 'p2p:ol', now, id)
  p2p.rq_set(P, owner, rid, 'offer', id)
  items[#items + 1] = p2p.offer_event(o, now)
  p2p.append(keys[2], items)
  return {'new', p2p.offer_flat(o)}
end

-- p2p_offer_update: pause/resume and edit an offer. A sell offer's amount up escrows
-- the difference, down releases it to available. Trades in progress keep their terms.
-- KEYS  {u:O}:bal, {u:O}:ev, {u:O}:p2p:o:<offer id>
-- ARGV  offer_id, status (OPEN|PAUSED|''), amount, price, min, max, methods JSON,
--       window, now_ms, request_id; '' leaves a field unchanged (amount may be 0)
-- Returns {'new'|'replay', offer flat fields}.
-- Errors (nothing written): UNKNOWN_ORDER, INVALID_PARAM (also: offer closed),
--   INSUFFICIENT_FUNDS.
local function p2p_offer_update(keys, argv)
  local P = p2p.prefix(keys[1])
  local owner = p2p.owner(P)
  local id, status, rid = argv[1], argv[2], argv[10] or ''
  local now = int_arg(argv[9], false)
  if not valid_id(id) or keys[3] ~= P .. 'p2p:o:' .. id then return fail('INVALID_PARAM', 'bad offer id') end
  if status ~= '' and status ~= 'OPEN' and status ~= 'PAUSED' then
    return fail('INVALID_PARAM', 'status must be OPEN or PAUSED')
  end
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  if not p2p.valid_rid(rid) then return fail('INVALID_PARAM', 'bad request_id') end
  local o = p2p.read(keys[3], P2P_OFFER_INT)
  if not o then return fail('UNKNOWN_ORDER', 'unknown offer') end
  local seen = p2p.rq_check(P, owner, rid, 'update', id)
  if seen == true then return {'replay', p2p.offer_flat(o)} end
  if seen then return seen end
  if o.status == 'CLOSED' then return fail('INVALID_PARAM', 'offer is CLOSED') end
  local old_amount = o.amount
  local fields = {{'amount', 3, true}, {'price', 4}, {'min', 5}, {'max', 6}, {'window', 8}}
  for _, f in ipairs(fields) do
    local s = argv[f[2]]
    if s ~= '' then
      local n = int_arg(s, f[3] == true)
      if not n then return fail('INVALID_PARAM', 'bad ' .. f[1]) end
      o[f[1]] = n
    end
  end
  if argv[7] ~= '' then o.methods = p2p.methods(argv[7]) end
  if status ~= '' then o.status = status end
  local err = p2p.check_terms(o)
  if err then return err end
  local delta = o.amount - old_amount
  if o.side == 'sell' and delta > 0 and p2p.avail(keys[1], o.asset) < delta then
    return fail('INSUFFICIENT_FUNDS', 'insufficient ' .. o.asset .. ' to escrow')
  end
  -- validated: writes start here
  local items = {}
  if o.side == 'sell' and delta ~= 0 then
    redis.call('HINCRBY', keys[1], o.asset .. ':a', -delta)
    redis.call('HINCRBY', keys[1], o.asset .. ':e', delta)
    if delta > 0 then
      items[1] = p2p.balance_event('escrow', id, o.asset, delta, 'edit', now)
    else
      items[1] = p2p.balance_event('unescrow', id, o.asset, -delta, 'edit', now)
    end
  end
  o.uts, o.v = now, o.v + 1
  p2p.write(keys[3], o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
  p2p.rq_set(P, owner, rid, 'update', id)
  items[#items + 1] = p2p.offer_event(o, now)
  p2p.append(keys[2], items)
  return {'new', p2p.offer_flat(o)}
end

-- p2p_offer_close: close an offer; a sell offer's remaining escrow goes back to
-- available (trades in progress keep theirs; it returns to available when they end).
-- KEYS  {u:O}:bal, {u:O}:ev, {u:O}:p2p:o:<offer id>
-- ARGV  offer_id, now_ms, request_id
-- Returns {'new'|'replay', offer flat fields}.
-- Errors (nothing written): UNKNOWN_ORDER, INVALID_PARAM.
local function p2p_offer_close(keys, argv)
  local P = p2p.prefix(keys[1])
  local id, rid = argv[1], argv[3] or ''
  local now = int_arg(argv[2], false)
  if not valid_id(id) or keys[3] ~= P .. 'p2p:o:' .. id then return fail('INVALID_PARAM', 'bad offer id') end
  if not now or not p2p.valid_rid(rid) then return fail('INVALID_PARAM', 'bad arguments') end
  local o = p2p.read(keys[3], P2P_OFFER_INT)
  if not o then return fail('UNKNOWN_ORDER', 'unknown offer') end
  if o.status == 'CLOSED' then return {'replay', p2p.offer_flat(o)} end
  -- validated: writes start here
  local items = {}
  if o.side == 'sell' and o.amount > 0 then
    redis.call('HINCRBY', keys[1], o.asset .. ':e', -o.amount)
    redis.call('HINCRBY', keys[1], o.asset .. ':a', o.amount)
    items[1] = p2p.balance_event('unescrow', id, o.asset, o.amount, 'close', now)
  end
  o.amount, o.status, o.uts, o.v = 0, 'CLOSED', now, o.v + 1
  p2p.write(keys[3], o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
  items[#items + 1] = p2p.offer_event(o, now)
  p2p.append(keys[2], items)
  return {'new', p2p.offer_flat(o)}
end

-- p2p_take: take part of a SELL offer: the amount moves from the offer to a new
-- PENDING trade (it stays in escrow). Idempotent by trade id and request id.
-- KEYS  {u:S}:bal, {u:S}:ev, {u:S}:p2p:o:<offer id>, {u:S}:p2p:t:<trade id>  (S = seller)
-- ARGV  trade_id, taker (buyer), amount, price (as seen by the taker), fiat_amount,
--       now_ms, request_id
-- Returns {'new'|'replay', trade flat fields}.
-- Errors (nothing written): UNKNOWN_ORDER, INVALID_PARAM (own offer, offer not OPEN,
--   price changed, amount outside the limits or above what is left, a replay with
--   another amount or price).
local function p2p_take(keys, argv)
  local P = p2p.prefix(keys[1])
  local seller = p2p.owner(P)
  local tid, taker, rid = argv[1], argv[2], argv[7] or ''
  local amount, price = int_arg(argv[3], false), int_arg(argv[4], false)
  local fiat_amount, now = int_arg(argv[5], false), int_arg(argv[6], false)
  if not valid_id(tid) or keys[4] ~= P .. 'p2p:t:' .. tid then return fail('INVALID_PARAM', 'bad trade id') end
  if string.sub(keys[3], 1, #P + 6) ~= P .. 'p2p:o:' then return fail('INVALID_PARAM', 'bad offer key') end
  if not valid_id(taker) then return fail('INVALID_PARAM', 'bad taker') end
  if not amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not price or not fiat_amount or not now then return fail('INVALID_PARAM', 'bad arguments') end
  if not p2p.valid_rid(rid) then return fail('INVALID_PARAM', 'bad request_id') end
  local prev = p2p.rq_target(P, taker, rid, 'take')
  if prev == false then return fail('INVALID_PARAM', 'request_id already used for another request') end
  local done = p2p.read(prev and (P .. 'p2p:t:' .. prev) or keys[4], P2P_TRADE_INT)
  if done and done.status ~= 'ABORTED' then
    if done.buyer ~= taker or done.amount ~= amount or done.price ~= price then
      return fail('INVALID_PARAM', 'request_id already used for another request')
    end
    return {'replay', p2p.trade_flat(done)}
  end
  local o = p2p.read(keys[3], P2P_OFFER_INT)
  if not o then return fail('UNKNOWN_ORDER', 'unknown offer') end
  if o.side ~= 'sell' then return fail('INVALID_PARAM', 'not a sell offer') end
  local err = p2p.check_take(o, taker, amount, price)
  if err then return err end
  if redis.call('HEXISTS', P .. 'ops', 't:p2p:' .. tid) == 1 then
    return fail('INVALID_PARAM', 'trade id already used')
  end
  -- validated: writes start here
  o.amount, o.locked, o.uts, o.v = o.amount - amount, o.locked + amount, now, o.v + 1
  local t = p2p.new_trade(tid, o, seller, taker, amount, fiat_amount, now)
  p2p.write(keys[3], o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
  p2p.write(keys[4], t, P2P_TRADE_INT, P2P_TRADE_STR, {'methods'})
  p2p.add_trade_index(P, t)
  p2p.rq_set(P, taker, rid, 'take', tid)
  p2p.append(keys[2], {p2p.offer_event(o, now), p2p.trade_event(t, now)})
  return {'new', p2p.trade_flat(t)}
end

-- p2p_reserve: first step of taking a BUY offer, on the buyer's (owner's) shard:
-- reserve the amount on the offer for a trade id (the trade itself is opened on the
-- seller's shard by p2p_open). Idempotent by trade id and request id.
-- KEYS  {u:B}:bal, {u:B}:ev, {u:B}:p2p:o:<offer id>   (B = buyer, the offer owner)
-- ARGV  trade_id, taker (seller), amount, price (as seen by the taker), now_ms, request_id
-- Returns {'new'|'replay', trade id, offer flat fields}; on a replay the trade id is
--   the one first reserved under that request id.
-- Errors (nothing written): UNKNOWN_ORDER, INVALID_PARAM (also: a replay whose amount or
--   price differs from the reservation's).
local function p2p_reserve(keys, argv)
  local P = p2p.prefix(keys[1])
  local tid, taker, rid = argv[1], argv[2], argv[6] or ''
  local amount, price, now = int_arg(argv[3], false), int_arg(argv[4], false), int_arg(argv[5], false)
  if not valid_id(tid) or not valid_id(taker) then return fail('INVALID_PARAM', 'bad arguments') end
  if string.sub(keys[3], 1, #P + 6) ~= P .. 'p2p:o:' then return fail('INVALID_PARAM', 'bad offer key') end
  if not amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not price or not now or not p2p.valid_rid(rid) then return fail('INVALID_PARAM', 'bad arguments') end
  local o = p2p.read(keys[3], P2P_OFFER_INT)
  if not o then return fail('UNKNOWN_ORDER', 'unknown offer') end
  local prev = p2p.rq_target(P, taker, rid, 'take')
  if prev == false then return fail('INVALID_PARAM', 'request_id already used for another request') end
  local rec = redis.call('HGET', keys[3], 'r:' .. (prev or tid))
  if rec then
    local ra, rt, rp = string.match(rec, '^(%d+)|([^|]*)|(%d+)|')
    if tonumber(ra) ~= amount or rt ~= taker or tonumber(rp) ~= price then
      return fail('INVALID_PARAM', 'request_id already used for another request')
    end
  end
  if prev or rec then return {'replay', prev or tid, p2p.offer_flat(o)} end
  if o.side ~= 'buy' then return fail('INVALID_PARAM', 'not a buy offer') end
  local err = p2p.check_take(o, taker, amount, price)
  if err then return err end
  -- validated: writes start here
  o.amount, o.locked, o.uts, o.v = o.amount - amount, o.locked + amount, now, o.v + 1
  p2p.write(keys[3], o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
  redis.call('HSET', keys[3], 'r:' .. tid, string.format('%s|%s|%s|%s', fmt(amount), taker, fmt(price),
    fmt(now)))
  redis.call('ZADD', P .. 'p2p:tl', now, tid .. '|' .. taker)
  p2p.rq_set(P, taker, rid, 'take', tid)
  p2p.append(keys[2], {p2p.offer_event(o, now)})
  return {'new', tid, p2p.offer_flat(o)}
end

-- p2p_open: second step of taking a BUY offer, on the seller's shard: escrow the
-- amount from the seller's available and open the PENDING trade. Idempotent by
-- trade id; refused for a trade id tombstoned by p2p_abort.
-- KEYS  {u:S}:bal, {u:S}:ev, {u:S}:p2p:t:<trade id>
-- ARGV  trade_id, offer_id, buyer, asset, fiat, price, amount, fiat_amount,
--       methods JSON, window minutes, now_ms
-- Returns {'new'|'replay', trade flat fields}.
-- Errors (nothing written): INVALID_PARAM, INSUFFICIENT_FUNDS, or the code of the
--   abort for a tombstoned trade id.
local function p2p_open(keys, argv)
  local P = p2p.prefix(keys[1])
  local seller = p2p.owner(P)
  local tid, oid, buyer, asset, fiat = argv[1], argv[2], argv[3], argv[4], argv[5]
  local o = {id = oid, side = 'buy', asset = asset, fiat = fiat, price = int_arg(argv[6], false),
    methods = p2p.methods(argv[9]), window = int_arg(argv[10], false)}
  local amount, fiat_amount, now = int_arg(argv[7], false), int_arg(argv[8], false), int_arg(argv[11], false)
  if not valid_id(tid) or keys[3] ~= P .. 'p2p:t:' .. tid then return fail('INVALID_PARAM', 'bad trade id') end
  if not valid_id(oid) or not valid_id(buyer) or buyer == seller then return fail('INVALID_PARAM', 'bad arguments') end
  if not p2p.valid_asset(asset) or not p2p.valid_fiat(fiat) then return fail('INVALID_PARAM', 'bad asset or fiat') end
  if not o.price or not amount or not fiat_amount or not now or not o.methods then
    return fail('INVALID_PARAM', 'bad arguments')
  end
  if not o.window or o.window > 1440 then return fail('INVALID_PARAM', 'bad window') end
  local t = p2p.read(keys[3], P2P_TRADE_INT)
  if t then
    if t.status == 'ABORTED' then return redis.error_reply(t.code .. ' ' .. t.msg) end
    if t.buyer ~= buyer or t.offer ~= oid then return fail('INVALID_PARAM', 'trade id already used') end
    return {'replay', p2p.trade_flat(t)}
  end
  if redis.call('HEXISTS', P .. 'ops', 't:p2p:' .. tid) == 1 then
    return fail('INVALID_PARAM', 'trade id already used')
  end
  if p2p.avail(keys[1], asset) < amount then
    return fail('INSUFFICIENT_FUNDS', 'insufficient ' .. asset .. ' to escrow')
  end
  -- validated: writes start here
  t = p2p.new_trade(tid, o, seller, buyer, amount, fiat_amount, now)
  redis.call('HINCRBY', keys[1], asset .. ':a', -amount)
  redis.call('HINCRBY', keys[1], asset .. ':e', amount)
  p2p.write(keys[3], t, P2P_TRADE_INT, P2P_TRADE_STR, {'methods'})
  p2p.add_trade_index(P, t)
  p2p.append(keys[2], {p2p.balance_event('escrow', tid, asset, amount, 'take', now), p2p.trade_event(t, now)})
  return {'new', p2p.trade_flat(t)}
end

-- p2p_abort: tombstone a trade id that was reserved on a buy offer but never opened,
-- so that a late p2p_open is refused (with code and message).
-- KEYS  {u:S}:p2p:t:<trade id>
-- ARGV  trade_id, error code, message, now_ms
-- Returns the trade's status after the call (ABORTED if it was never opened).
local function p2p_abort(keys, argv)
  local tid, code, msg = argv[1], argv[2], argv[3] or ''
  local now = int_arg(argv[4], false)
  if not valid_id(tid) or not now or type(code) ~= 'string' or not string.find(code, '^[A-Z_]+$') then
    return fail('INVALID_PARAM', 'bad arguments')
  end
  local status = redis.call('HGET', keys[1], 'status')
  if status then return status end
  redis.call('HSET', keys[1], 'id', tid, 'status', 'ABORTED', 'code', code, 'msg', string.sub(msg, 1, 200),
    'uts', fmt(now))
  redis.call('PEXPIRE', keys[1], P2P_TOMB_TTL_MS)
  return 'ABORTED'
end

-- p2p_unreserve: settle a BUY offer's reservation once its trade has ended: 'fill'
-- (released: counts as filled) or 'return' (cancelled, expired, refunded or aborted:
-- back to the offer's amount unless the offer is closed). Idempotent.
-- KEYS  {u:B}:bal, {u:B}:ev, {u:B}:p2p:o:<offer id>
-- ARGV  trade_id, outcome (fill|return), now_ms
-- Returns {'new'|'noop', offer flat fields or nothing}.
-- Errors (nothing written): INVALID_PARAM.
local function p2p_unreserve(keys, argv)
  local P = p2p.prefix(keys[1])
  local tid, outcome = argv[1], argv[2]
  local now = int_arg(argv[3], false)
  if not valid_id(tid) or (outcome ~= 'fill' and outcome ~= 'return') or not now then
    return fail('INVALID_PARAM', 'bad arguments')
  end
  if string.sub(keys[3], 1, #P + 6) ~= P .. 'p2p:o:' then return fail('INVALID_PARAM', 'bad offer key') end
  local rec = redis.call('HGET', keys[3], 'r:' .. tid)
  if not rec then return {'noop'} end
  local o = p2p.read(keys[3], P2P_OFFER_INT)
  local amount = tonumber(string.match(rec, '^(%d+)|'))
  -- validated: writes start here
  o.locked = o.locked - amount
  if outcome == 'fill' then
    o.filled = o.filled + amount
  elseif o.status ~= 'CLOSED' then
    o.amount = o.amount + amount
  end
  o.uts, o.v = now, o.v + 1
  p2p.write(keys[3], o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
  redis.call('HDEL', keys[3], 'r:' .. tid)
  p2p.append(keys[2], {p2p.offer_event(o, now)})
  return {'new', p2p.offer_flat(o)}
end

-- Who `actor` is in trade t: buyer, seller, admin, system, or nil (a stranger).
function p2p.party(t, actor, role)
  if actor == t.buyer then return 'buyer' end
  if actor == t.seller then return 'seller' end
  if role == 'admin' or role == 'system' then return role end
  return nil
end

local P2P_WHO = {buyer = 'the buyer', seller = 'the seller', party = 'the buyer or the seller',
  admin = 'an admin', system = 'the system'}

-- The escrow of a trade that did not go to the buyer: back to its sell offer unless
-- the offer is closed, else (and for buy offers) back to the seller's available.
function p2p.give_back(P, keys, t, reason, now, items)
  if t.oside == 'sell' then
    local okey = P .. 'p2p:o:' .. t.offer
    local o = p2p.read(okey, P2P_OFFER_INT)
    if o then
      o.locked = o.locked - t.amount
      if o.status ~= 'CLOSED' then o.amount = o.amount + t.amount end
      o.uts, o.v = now, o.v + 1
      p2p.write(okey, o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
      items[#items + 1] = p2p.offer_event(o, now)
      if o.status ~= 'CLOSED' then return end
    end
  end
  redis.call('HINCRBY', keys[1], t.asset .. ':e', -t.amount)
  redis.call('HINCRBY', keys[1], t.asset .. ':a', t.amount)
  items[#items + 1] = p2p.balance_event('unescrow', t.id, t.asset, t.amount, reason, now)
end

-- The escrow of a released trade leaves the seller through the outbox.
function p2p.pay_out(P, keys, t, now, items)
  if t.oside == 'sell' then
    local okey = P .. 'p2p:o:' .. t.offer
    local o = p2p.read(okey, P2P_OFFER_INT)
    if o then
      o.locked, o.filled, o.uts, o.v = o.locked - t.amount, o.filled + t.amount, now, o.v + 1
      p2p.write(okey, o, P2P_OFFER_INT, P2P_OFFER_STR, {'methods'})
      items[#items + 1] = p2p.offer_event(o, now)
    end
  end
  redis.call('HINCRBY', keys[1], t.asset .. ':e', -t.amount)
  items[#items + 1] = p2p.balance_event('unescrow', t.id, t.asset, t.amount, 'release', now)
  items[#items + 1] = string.format(
    '{"e":"transfer_out","ts":%s,"id":"p2p:%s","to":"%s","asset":"%s","amount":%s}',
    fmt(now), t.id, t.buyer, t.asset, fmt(t.amount))
end

-- p2p_act: one transition of a trade (P2P_RULES), atomic and idempotent: a retry
-- (same request id, or the same action once its target state is reached) writes
-- nothing and answers 'replay'.
-- KEYS  {u:S}:bal, {u:S}:ev, {u:S}:p2p:t:<trade id>   (S = seller)
-- ARGV  action (paid|release|cancel|expire|dispute|resolve_release|resolve_refund),
--       actor user id, role (user|admin|system), now_ms, request_id, reason (dispute)
-- Returns {'new'|'replay'|'not_due', trade flat fields} ('not_due': expire before
--   the payment deadline, nothing written).
-- Errors (nothing written): UNKNOWN_ORDER (no such trade, or the actor is no party and
--   no admin), FORBIDDEN (not this party's move), INVALID_PARAM (wrong state, payment
--   window over, missing reason, malformed), INTERNAL (escrow short: a bug).
local function p2p_act(keys, argv)
  local P = p2p.prefix(keys[1])
  local action, actor, role, rid, reason = argv[1], argv[2], argv[3], argv[5] or '', argv[6] or ''
  local now = int_arg(argv[4], false)
  local rule = P2P_RULES[action]
  if not rule then return fail('INVALID_PARAM', 'unknown action') end
  if not valid_id(actor) or (role ~= 'user' and role ~= 'admin' and role ~= 'system') then
    return fail('INVALID_PARAM', 'bad actor')
  end
  if not now or not p2p.valid_rid(rid) or #reason > P2P_MAX_TEXT then return fail('INVALID_PARAM', 'bad arguments') end
  if string.sub(keys[3], 1, #P + 6) ~= P .. 'p2p:t:' then return fail('INVALID_PARAM', 'bad trade key') end
  local t = p2p.read(keys[3], P2P_TRADE_INT)
  if not t or t.status == 'ABORTED' then return fail('UNKNOWN_ORDER', 'unknown trade') end
  local party = p2p.party(t, actor, role)
  if not party then return fail('UNKNOWN_ORDER', 'unknown trade') end
  local seen = p2p.rq_check(P, actor, rid, action, t.id)
  if seen == true then return {'replay', p2p.trade_flat(t)} end
  if seen then return seen end
  local ok_party = party == rule.by or (rule.by == 'party' and (party == 'buyer' or party == 'seller'))
  if not ok_party then
    return fail('FORBIDDEN', 'only ' .. P2P_WHO[rule.by] .. ' may ' .. P2P_DOES[action])
  end
  if t.status == rule.to and t.act == action then return {'replay', p2p.trade_flat(t)} end
  if not rule.from[t.status] then return fail('INVALID_PARAM', 'trade is ' .. t.status) end
  if action == 'paid' and now >= t.exp then return fail('INVALID_PARAM', 'the payment window has expired') end
  if action == 'expire' and now < t.exp then return {'not_due', p2p.trade_flat(t)} end
  if action == 'dispute' and not string.find(reason, '%S') then
    return fail('INVALID_PARAM', 'a dispute needs a reason')
  end
  if rule.to == 'RELEASED' and p2p.escrowed(keys[1], t.asset) < t.amount then
    return fail('INTERNAL', 'escrow of ' .. t.asset .. ' is short')
  end
  -- validated: writes start here
  local items = {}
  if rule.to == 'RELEASED' then
    p2p.pay_out(P, keys, t, now, items)
  elseif rule.to == 'CANCELLED' or rule.to == 'EXPIRED' or rule.to == 'REFUNDED' then
    p2p.give_back(P, keys, t, action == 'resolve_refund' and 'refund' or action, now, items)
  end
  if action == 'paid' then t.paid_ts = now end
  if action == 'dispute' then
    t.dispute_by, t.dispute_reason, t.dispute_ts = actor, reason, now
  end
  if action == 'resolve_release' or action == 'resolve_refund' then
    t.resolution, t.resolved_by = string.sub(action, 9), actor
  end
  t.status, t.act, t.uts, t.v = rule.to, action, now, t.v + 1
  p2p.write(keys[3], t, P2P_TRADE_INT, P2P_TRADE_STR, {'methods'})
  p2p.rq_set(P, actor, rid, action, t.id)
  items[#items + 1] = p2p.trade_event(t, now)
  local entry = p2p.append(keys[2], items)
  if rule.to == 'RELEASED' then
    redis.call('HSET', P .. 'ops', 't:p2p:' .. t.id,
      string.format('%s|%s|%s|%s|%s', t.asset, fmt(t.amount), t.buyer, entry, fmt(now)))
  end
  return {'new', p2p.trade_flat(t)}
end

-- p2p_msg_post: append a message to a trade's thread (the buyer or the seller while
-- the trade is PENDING, PAID or DISPUTED; an admin while it is DISPUTED).
-- KEYS  {u:S}:p2p:t:<trade id>, {u:S}:p2p:m:<trade id>, {u:S}:ev
-- ARGV  actor, role (user|admin), body, now_ms, request_id
-- Returns {'new'|'replay', message JSON}.
-- Errors (nothing written): UNKNOWN_ORDER, FORBIDDEN, INVALID_PARAM (trade over, body
--   empty or too long, thread full).
local function p2p_msg_post(keys, argv)
  local actor, role, body, rid = argv[1], argv[2], argv[3], argv[5] or ''
  local now = int_arg(argv[4], false)
  if not valid_id(actor) or (role ~= 'user' and role ~= 'admin') or not now or not p2p.valid_rid(rid) then
    return fail('INVALID_PARAM', 'bad arguments')
  end
  if type(body) ~= 'string' or not string.find(body, '%S') or #body > P2P_MAX_TEXT then
    return fail('INVALID_PARAM', 'message must be non-empty text')
  end
  local P = string.sub(keys[3], 1, #keys[3] - 2)
  if string.sub(keys[1], 1, #P + 6) ~= P .. 'p2p:t:' then return fail('INVALID_PARAM', 'bad trade key') end
  local t = p2p.read(keys[1], P2P_TRADE_INT)
  if not t or t.status == 'ABORTED' then return fail('UNKNOWN_ORDER', 'unknown trade') end
  if keys[2] ~= P .. 'p2p:m:' .. t.id then return fail('INVALID_PARAM', 'bad message key') end
  local party = p2p.party(t, actor, role)
  if not party or party == 'system' then return fail('UNKNOWN_ORDER', 'unknown trade') end
  local seen = p2p.rq_check(P, actor, rid, 'msg', t.id)
  if seen == true then
    return {'replay', redis.call('GET', P .. 'p2p:rq:' .. actor .. ':' .. rid .. ':m') or ''}
  end
  if seen then return seen end
  if party == 'admin' and t.status ~= 'DISPUTED' then
    return fail('FORBIDDEN', 'admins may post only in a dispute')
  end
  if not P2P_ACTIVE[t.status] then return fail('INVALID_PARAM', 'trade is ' .. t.status) end
  local n = redis.call('LLEN', keys[2])
  if n >= P2P_MAX_MSGS then return fail('INVALID_PARAM', 'the message thread is full') end
  -- validated: writes start here
  local msg = string.format('{"n":%s,"trade":"%s","from":"%s","role":"%s","ts":%s,"body":%s}',
    fmt(n + 1), t.id, actor, party, fmt(now), cjson.encode(body))
  redis.call('RPUSH', keys[2], msg)
  if rid ~= '' then
    p2p.rq_set(P, actor, rid, 'msg', t.id)
    redis.call('SET', P .. 'p2p:rq:' .. actor .. ':' .. rid .. ':m', msg, 'PX', P2P_RQ_TTL_MS)
  end
  p2p.append(keys[3], {'{"e":"p2p_msg",' .. string.sub(msg, 2)})
  return {'new', msg}
end

-- ntf_push: store a notification in a user's capped inbox (newest first) and append
-- it as a `notice` event to the user's account stream (the drain writes it to the
-- `notifications` table), at most once per dedup key; all three writes or none.
-- KEYS  {u:U}:inbox, {u:U}:ev [, {u:U}:inbox:d:<dedup key>]
-- ARGV  id (decimal snowflake, fits a signed 64-bit integer), kind, message, ref,
--       ts_ms, cap (entries kept), dedup ttl_ms
-- Inbox entry: {"id","kind","message","ref","ts"}; stream event:
-- {"e":"notice","ts","id","kind","message","ref","dedup"} (dedup "" without a key).
-- Returns 1 if stored, 0 if the dedup key was already used (nothing written).
-- Errors (nothing written): INVALID_PARAM.
local NTF_MAX_MESSAGE = 8192 -- bytes (the engine caps characters lower)
local NTF_MAX_DEDUP = 200

local function ntf_id(s)
  if type(s) ~= 'string' or #s > 19 or not string.find(s, '^[1-9]%d*$') then return false end
  return #s < 19 or s <= '9223372036854775807' -- same length: string order is numeric order
end

local function ntf_push(keys, argv)
  local id, kind, message, ref = argv[1], argv[2], argv[3], argv[4]
  local ts, cap, ttl = int_arg(argv[5], false), int_arg(argv[6], false), int_arg(argv[7], false)
  if not ntf_id(id) or not ts or not cap or not ttl then return fail('INVALID_PARAM', 'bad arguments') end
  if type(kind) ~= 'string' or #kind < 1 or #kind > 64 or type(ref) ~= 'string' or #ref > 128
    or type(message) ~= 'string' or #message > NTF_MAX_MESSAGE then
    return fail('INVALID_PARAM', 'bad notification kind, message or ref')
  end
  local P = string.sub(keys[1], 1, #keys[1] - 5)
  if string.sub(keys[1], -6) ~= ':inbox' or not p2p.owner(P) or keys[2] ~= P .. 'ev' then
    return fail('INVALID_PARAM', 'bad inbox or stream key')
  end
  local dedup = ''
  if keys[3] then
    if string.sub(keys[3], 1, #keys[1] + 3) ~= keys[1] .. ':d:' then return fail('INVALID_PARAM', 'bad dedup key') end
    dedup = string.sub(keys[3], #keys[1] + 4)
    if #dedup < 1 or #dedup > NTF_MAX_DEDUP then return fail('INVALID_PARAM', 'bad dedup key') end
  end
  local fields = string.format('"id":"%s","kind":%s,"message":%s,"ref":%s', id, cjson.encode(kind),
    cjson.encode(message), cjson.encode(ref))
  -- validated: writes start here
  if keys[3] and not redis.call('SET', keys[3], '1', 'NX', 'PX', ttl) then return 0 end
  redis.call('LPUSH', keys[1], '{' .. fields .. ',"ts":' .. argv[5] .. '}')
  redis.call('LTRIM', keys[1], 0, cap - 1)
  p2p.append(keys[2], {'{"e":"notice","ts":' .. argv[5] .. ',' .. fields .. ',"dedup":' .. cjson.encode(dedup) .. '}'})
  return 1
end

redis.register_function('p2p_offer_create', p2p_offer_create)
redis.register_function('p2p_offer_update', p2p_offer_update)
redis.register_function('p2p_offer_close', p2p_offer_close)
redis.register_function('p2p_take', p2p_take)
redis.register_function('p2p_reserve', p2p_reserve)
redis.register_function('p2p_open', p2p_open)
redis.register_function('p2p_abort', p2p_abort)
redis.register_function('p2p_unreserve', p2p_unreserve)
redis.register_function('p2p_act', p2p_act)
redis.register_function('p2p_msg_post', p2p_msg_post)
redis.register_function('ntf_push', ntf_push)
