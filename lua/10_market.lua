-- hftx function library: the market shard (order book and matching).
--
-- Keys of one market all carry the hash tag {m:<MARKET>} (docs/internals.md):
--   P..'cfg'  hash  config + seq + tid       P..'bids' / P..'asks'  zset orders
--   P..'lv:b' / P..'lv:a'  zset levels        P..'d'    hash  level -> size
--   P..'o:'..id  hash order record            P..'c:'..user..':'..cid  string
--   P..'ev'   stream, one entry per call: f (first seq), l (last seq), e (JSON events)
-- where P is '{m:<MARKET>}:'. Every function takes KEYS[1] = P..'cfg' and derives
-- the other keys from it (same hash tag, so the same cluster slot).
--
-- Order book encoding: score = price (asks) or -price (bids); member
-- '<seq %016d>|<order id>' so equal prices sort by arrival (time priority).

local MAX_FILLS_DEFAULT = 200
local TERMINAL_TTL_MS = 86400000

local function prefix_of(cfg_key)
  return string.sub(cfg_key, 1, #cfg_key - 3)
end

local function side_keys(P, side)
  -- returns book, levels, depth-field prefix of `side`
  if side == 'buy' then return P .. 'bids', P .. 'lv:b', 'b' end
  return P .. 'asks', P .. 'lv:a', 'a'
end

local CFG_FIELDS = {'status', 'tick', 'lot', 'min', 'maxn', 'mult', 'mfee', 'tfee', 'seq', 'tid', 'base'}

local function load_cfg(cfg_key)
  local v = redis.call('HMGET', cfg_key, unpack(CFG_FIELDS))
  if not v[11] then return nil end
  return {
    status = v[1], tick = tonumber(v[2]), lot = tonumber(v[3]), min = tonumber(v[4]),
    maxn = tonumber(v[5]), mult = tonumber(v[6]), mfee = tonumber(v[7]), tfee = tonumber(v[8]),
    seq = tonumber(v[9]), tid = tonumber(v[10]),
  }
end

-- Event log of one call: events get consecutive seqs from cfg.seq + 1. Events are
-- JSON objects built by concatenation (cheaper than string.format in Lua 5.1).
local function new_log(cfg, now_s)
  return {cfg = cfg, now = now_s, first = cfg.seq + 1, tid0 = cfg.tid, items = {}}
end

local function emit(log, body)
  local cfg = log.cfg
  cfg.seq = cfg.seq + 1
  log.items[#log.items + 1] = '{"seq":' .. fmt(cfg.seq) .. ',"ts":' .. log.now .. ',' .. body .. '}'
end

-- Persist seq/tid and append the call's events as one stream entry; returns the JSON.
local function commit_log(log, P)
  if #log.items == 0 then return '[]' end
  local json = '[' .. table.concat(log.items, ',') .. ']'
  local last = fmt(log.cfg.seq)
  if log.cfg.tid ~= log.tid0 then
    redis.call('HSET', P .. 'cfg', 'seq', last, 'tid', fmt(log.cfg.tid))
  else
    redis.call('HSET', P .. 'cfg', 'seq', last)
  end
  redis.call('XADD', P .. 'ev', '*', 'f', fmt(log.first), 'l', last, 'e', json)
  return json
end

local function emit_accepted(log, o)
  emit(log, '"e":"accepted","id":"' .. o.id .. '","u":"' .. o.u .. '","cid":"' .. o.cid ..
    '","side":"' .. o.side .. '","type":"' .. o.type .. '","tif":"' .. o.tif .. '","po":' .. o.po ..
    ',"stp":"' .. o.stp .. '","price":' .. o.ps .. ',"amount":' .. o.as .. ',"qb":' .. o.qs)
end

local function emit_done(log, o, reason, msg)
  emit(log, '"e":"done","id":"' .. o.id .. '","u":"' .. o.u .. '","side":"' .. o.side ..
    '","reason":"' .. reason .. '","msg":"' .. msg .. '","amount":' .. o.as .. ',"filled":' ..
    fmt(o.filled) .. ',"cost":' .. fmt(o.cost))
end

-- Level changes are accumulated per call and written/emitted once per level.
local function level_delta(levels, side, price, price_s, delta)
  local k = side .. price_s
  local l = levels[k]
  if not l then
    l = {side = side, price = price, ps = price_s, delta = 0}
    levels[k] = l
    levels[#levels + 1] = l
  end
  l.delta = l.delta + delta
end

local function flush_levels(levels, log, P)
  for i = 1, #levels do
    local l = levels[i]
    if l.delta ~= 0 then
      local _, lv, dp = side_keys(P, l.side)
      local size = redis.call('HINCRBY', P .. 'd', dp .. l.ps, l.delta)
      if size <= 0 then
        redis.call('HDEL', P .. 'd', dp .. l.ps)
        redis.call('ZREM', lv, l.ps)
        size = 0
      elseif size == l.delta then
        redis.call('ZADD', lv, l.side == 'buy' and -l.price or l.price, l.ps)
      end
      emit(log, '"e":"level","side":"' .. l.side .. '","price":' .. l.ps .. ',"size":' .. fmt(size))
    end
  end
end

local ORDER_FIELDS = {'id', 'u', 'cid', 'side', 'type', 'tif', 'po', 'stp', 'price', 'amount',
  'qb', 'filled', 'cost', 'status', 'ts', 'uts', 'mem'}

-- An order as a table; ps/as/qs keep the price/amount/budget strings as stored.
local function read_order(P, id)
  local v = redis.call('HMGET', P .. 'o:' .. id, unpack(ORDER_FIELDS))
  if not v[1] then return nil end
  return {
    id = v[1], u = v[2], cid = v[3], side = v[4], type = v[5], tif = v[6], po = v[7],
    stp = v[8], ps = v[9], as = v[10], qs = v[11], price = tonumber(v[9]), amount = tonumber(v[10]),
    qb = tonumber(v[11]), filled = tonumber(v[12]), cost = tonumber(v[13]), status = v[14],
    ts = v[15], mem = v[17],
  }
end

local function write_order(P, o, now_s)
  local key = P .. 'o:' .. o.id
  redis.call('HSET', key, 'id', o.id, 'u', o.u, 'cid', o.cid, 'side', o.side, 'type', o.type,
    'tif', o.tif, 'po', o.po, 'stp', o.stp, 'price', o.ps, 'amount', o.as, 'qb', o.qs,
    'filled', fmt(o.filled), 'cost', fmt(o.cost), 'status', o.status, 'ts', o.ts, 'uts', now_s,
    'mem', o.mem or '')
  if o.status ~= 'NEW' and o.status ~= 'PARTIALLY_FILLED' then
    redis.call('PEXPIRE', key, TERMINAL_TTL_MS)
  end
end

-- The fields of a resting order that matching needs (member = 16-digit seq|id).
local function read_maker(P, id)
  local v = redis.call('HMGET', P .. 'o:' .. id, 'u', 'side', 'amount', 'filled', 'cost')
  return {id = id, u = v[1], side = v[2], as = v[3], amount = tonumber(v[3]),
    filled = tonumber(v[4]), cost = tonumber(v[5])}
end

-- A maker's fill: only the fields that changed.
local function write_fill(P, o, now_s)
  local key = P .. 'o:' .. o.id
  redis.call('HSET', key, 'filled', fmt(o.filled), 'cost', fmt(o.cost), 'status', o.status, 'uts', now_s)
  if o.status == 'FILLED' then redis.call('PEXPIRE', key, TERMINAL_TTL_MS) end
end

local function order_reply(kind, o, events, more)
  return {kind, events, o.status, fmt(o.filled), fmt(o.cost), more and 1 or 0, o.id}
end

-- The part of a maker's remaining size a taker may take at `price`, bounded by the
-- taker's remaining amount and quote budget. Returns size (multiple of lot).
local function take_size(cfg, t, price, maker_rem)
  local q = maker_rem
  if t.amount > 0 then
    local rem = t.amount - t.filled
    if rem < q then q = rem end
  end
  if t.qb > 0 then
    local per_lot = (price / cfg.tick) * cfg.mult
    local lots = math.floor((t.qb - t.cost) / per_lot)
    if lots * cfg.lot < q then q = lots * cfg.lot end
  end
  return q
end

local function crosses(t, price)
  if t.type == 'market' then return true end
  if t.side == 'buy' then return price <= t.price end
  return price >= t.price
end

local function taker_done(t)
  if t.amount > 0 and t.filled >= t.amount then return true end
  if t.qb > 0 and t.cost >= t.qb then return true end
  return false
end

-- Dry run for FOK: can `t` be filled in full without breaking self-trade
-- prevention, within `limit` makers? Reads only.
local function fok_fillable(P, cfg, t, limit)
  local opp = side_keys(P, t.side == 'buy' and 'sell' or 'buy')
  local need = t.amount
  local seen = 0
  while seen < limit do
    local batch = redis.call('ZRANGE', opp, seen, seen + 15, 'WITHSCORES')
    if #batch == 0 then return false end
    for i = 1, #batch, 2 do
      local price = math.abs(tonumber(batch[i + 1]))
      if not crosses(t, price) then return false end
      local mid = string.sub(batch[i], 18)
      local m = redis.call('HMGET', P .. 'o:' .. mid, 'u', 'amount', 'filled')
      if m[1] == t.u then
        if t.stp ~= 'cancel_oldest' then return false end
      else
        need = need - (tonumber(m[2]) - tonumber(m[3]))
        if need <= 0 then return true end
      end
      seen = seen + 1
      if seen >= limit then return false end
    end
  end
  return false
end

-- A price as the string a zset score reply carries (bids are stored negated).
local function score_price(score)
  if string.byte(score, 1) == 45 then return string.sub(score, 2) end
  return score
end

-- Match taker `t` against the opposite side. Returns true when it stopped only
-- because it hit `max_fills` (more liquidity may remain).
local function match(P, cfg, log, levels, t, max_fills, now_s)
  local opp_side = t.side == 'buy' and 'sell' or 'buy'
  local opp = side_keys(P, opp_side)
  local removed = {}
  local fills = 0
  local stopped_by_limit = false
  local stop = false
  while not stop do
    if taker_done(t) or t.status == 'CANCELED' then break end
    if fills >= max_fills then stopped_by_limit = true break end
    local batch = redis.call('ZRANGE', opp, #removed, #removed + 7, 'WITHSCORES')
    if #batch == 0 then break end
    local progressed = false
    for i = 1, #batch, 2 do
      if taker_done(t) or fills >= max_fills then break end
      local member = batch[i]
      local price_s = score_price(batch[i + 1])
      local price = tonumber(price_s)
      if not crosses(t, price) then stop = true break end
      local m = read_maker(P, string.sub(member, 18))
      local maker_rem = m.amount - m.filled
      if m.u == t.u then
        -- self-trade prevention, decided by the taker's mode
        if t.stp == 'cancel_oldest' or t.stp == 'cancel_both' then
          m.status = 'CANCELED'
          write_fill(P, m, now_s)
          redis.call('PEXPIRE', P .. 'o:' .. m.id, TERMINAL_TTL_MS)
          removed[#removed + 1] = member
          level_delta(levels, opp_side, price, price_s, -maker_rem)
          emit_done(log, m, 'CANCELED', 'STP')
        end
        if t.stp == 'cancel_newest' or t.stp == 'cancel_both' then
          t.status = 'CANCELED'
          t.msg = 'STP'
          break
        end
        progressed = true
      else
        local q = take_size(cfg, t, price, maker_rem)
        if q <= 0 then stop = true break end
        local quote = (price / cfg.tick) * (q / cfg.lot) * cfg.mult
        if t.cost + quote > cfg.maxn then
          t.capped = true -- the order's cost would pass max notional: expire the rest
          stop = true
          break
        end
        local mfee, tfee
        if t.side == 'buy' then
          mfee = fee_of(quote, cfg.mfee)
          tfee = fee_of(q, cfg.tfee)
        else
          mfee = fee_of(q, cfg.mfee)
          tfee = fee_of(quote, cfg.tfee)
        end
        cfg.tid = cfg.tid + 1
        m.filled = m.filled + q
        m.cost = m.cost + quote
        t.filled = t.filled + q
        t.cost = t.cost + quote
        fills = fills + 1
        level_delta(levels, opp_side, price, price_s, -q)
        emit(log, '"e":"trade","tid":' .. fmt(cfg.tid) .. ',"price":' .. price_s .. ',"size":' ..
          fmt(q) .. ',"quote":' .. fmt(quote) .. ',"side":"' .. t.side .. '","maker":"' .. m.id ..
          '","taker":"' .. t.id .. '","mu":"' .. m.u .. '","tu":"' .. t.u .. '","mfee":' ..
          fmt(mfee) .. ',"tfee":' .. fmt(tfee))
        if m.filled >= m.amount then
          m.status = 'FILLED'
          removed[#removed + 1] = member
          write_fill(P, m, now_s)
          emit_done(log, m, 'FILLED', '')
        else
          -- the maker keeps a remainder only when the taker can take no more
          m.status = 'PARTIALLY_FILLED'
          write_fill(P, m, now_s)
          stop = true
          break
        end
        progressed = true
      end
    end
    if not progressed then break end
  end
  if #removed > 0 then redis.call('ZREM', opp, unpack(removed)) end
  return stopped_by_limit
end

-- Decide what happens to the taker after matching: rest, expire, fill, cancel.
local function finish(P, cfg, log, levels, t, now_s)
  if t.status == 'CANCELED' then
    emit_done(log, t, 'CANCELED', t.msg or 'STP')
  elseif taker_done(t) then
    t.status = 'FILLED'
    emit_done(log, t, 'FILLED', '')
  elseif t.capped then
    t.status = 'EXPIRED'
    emit_done(log, t, 'EXPIRED', 'MAX_NOTIONAL')
  elseif t.type == 'market' then
    if t.amount == 0 and t.filled > 0 then
      t.status = 'FILLED'
      emit_done(log, t, 'FILLED', '')
    else
      t.status = 'EXPIRED'
      emit_done(log, t, 'EXPIRED', 'NO_LIQUIDITY')
    end
  elseif t.tif == 'GTC' then
    t.status = t.filled > 0 and 'PARTIALLY_FILLED' or 'NEW'
    local book = side_keys(P, t.side)
    local aseq = fmt(t.aseq)
    t.mem = string.rep('0', 16 - #aseq) .. aseq .. '|' .. t.id
    redis.call('ZADD', book, t.side == 'buy' and -t.price or t.price, t.mem)
    level_delta(levels, t.side, t.price, t.ps, t.amount - t.filled)
  else
    t.status = 'EXPIRED'
    emit_done(log, t, 'EXPIRED', t.tif)
  end
  flush_levels(levels, log, P)
  write_order(P, t, now_s)
end

local function read_book_best(P, side)
  local _, lv = side_keys(P, side)
  local top = redis.call('ZRANGE', lv, 0, 0, 'WITHSCORES')
  if #top == 0 then return nil end
  return math.abs(tonumber(top[2]))
end

-- mkt_place: place an order (idempotent by order id).
-- KEYS[1] {m:X}:cfg
-- ARGV  id, user, side(buy|sell), type(limit|market), tif(GTC|IOC|FOK), post_only(0|1),
--       price, amount, quote_budget, stp, client_order_id ('' if none), now_ms,
--       max_fills ('' = default)
-- Returns {kind, events_json, status, filled, cost, more(0|1), order_id} where kind is
--   'new' (this call placed it), 'replay' (order id already known: its current state,
--   events '[]'), 'duplicate' (client_order_id already used: the existing order id).
-- Errors (nothing written): INVALID_PARAM, BAD_PRECISION, UNKNOWN_MARKET,
--   MARKET_NOT_TRADING, UNKNOWN_ORDER (id tombstoned by the hold reconciler).
local function mkt_place(keys, argv)
  local P = prefix_of(keys[1])
  local id, user, side, otype, tif = argv[1], argv[2], argv[3], argv[4], argv[5]
  if not valid_id(id) or not valid_id(user) then return fail('INVALID_PARAM', 'bad order or user id') end
  local known = redis.call('HGET', P .. 'o:' .. id, 'status')
  if known then
    if known == 'ABORTED' then return fail('UNKNOWN_ORDER', 'order id expired') end
    return order_reply('replay', read_order(P, id), '[]', false)
  end
  local cfg = load_cfg(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if side ~= 'buy' and side ~= 'sell' then return fail('INVALID_PARAM', 'side must be buy or sell') end
  if otype ~= 'limit' and otype ~= 'market' then return fail('INVALID_PARAM', 'type must be limit or market') end
  if tif ~= 'GTC' and tif ~= 'IOC' and tif ~= 'FOK' then return fail('INVALID_PARAM', 'bad time_in_force') end
  local po = argv[6] == '1' and 1 or 0
  if argv[6] ~= '0' and argv[6] ~= '1' then return fail('INVALID_PARAM', 'bad post_only') end
  local stp = argv[10]
  if stp ~= 'cancel_newest' and stp ~= 'cancel_oldest' and stp ~= 'cancel_both' then
    return fail('INVALID_PARAM', 'bad stp')
  end
  local cid = argv[11]
  if cid ~= '' and not valid_id(cid) then return fail('INVALID_PARAM', 'bad client_order_id') end
  local now = int_arg(argv[12], false)
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local max_fills = MAX_FILLS_DEFAULT
  if argv[13] and argv[13] ~= '' then
    max_fills = int_arg(argv[13], false)
    if not max_fills then return fail('INVALID_PARAM', 'bad max_fills') end
  end
  local price = int_arg(argv[7], true)
  local amount = int_arg(argv[8], true)
  local qb = int_arg(argv[9], true)
  if not price or not amount or not qb then return fail('INVALID_PARAM', 'amounts must be non-negative integers') end
  if cfg.status ~= 'TRADING' then return fail('MARKET_NOT_TRADING', 'market is ' .. cfg.status) end
  if otype == 'limit' then
    if price == 0 then return fail('INVALID_PARAM', 'limit order needs a price') end
    if amount == 0 then return fail('INVALID_PARAM', 'amount must be positive') end
    if qb ~= 0 then return fail('INVALID_PARAM', 'quote_amount is for market buys') end
    if price % cfg.tick ~= 0 then return fail('BAD_PRECISION', 'price is not a multiple of the price increment') end
  else
    if price ~= 0 then return fail('INVALID_PARAM', 'market order takes no price') end
    if po == 1 then return fail('INVALID_PARAM', 'market order cannot be post-only') end
    if tif == 'GTC' then tif = 'IOC' end
    if tif == 'FOK' and qb > 0 and amount == 0 then return fail('INVALID_PARAM', 'FOK needs an amount') end
    if side == 'sell' and (qb ~= 0 or amount == 0) then return fail('INVALID_PARAM', 'market sell needs an amount') end
    if side == 'buy' and qb == 0 then return fail('INVALID_PARAM', 'market buy needs a quote budget') end
    if qb > cfg.maxn then return fail('INVALID_PARAM', 'quote_amount above max notional') end
  end
  if amount > 0 then
    if amount % cfg.lot ~= 0 then return fail('BAD_PRECISION', 'amount is not a multiple of the size increment') end
    if amount < cfg.min then return fail('INVALID_PARAM', 'amount below the minimum size') end
  end
  if otype == 'limit' and (price / cfg.tick) * (amount / cfg.lot) * cfg.mult > cfg.maxn then
    return fail('INVALID_PARAM', 'order notional above max notional')
  end
  if po == 1 and tif ~= 'GTC' then return fail('INVALID_PARAM', 'post-only orders are GTC') end
  if cid ~= '' then
    local ckey = P .. 'c:' .. user .. ':' .. cid
    local prev = redis.call('GET', ckey)
    if prev then
      local o = read_order(P, prev)
      if o then return order_reply('duplicate', o, '[]', false) end
    end
  end
  -- validated: writes start here
  if cid ~= '' then redis.call('SET', P .. 'c:' .. user .. ':' .. cid, id, 'PX', TERMINAL_TTL_MS) end
  local now_s = argv[12]
  local log = new_log(cfg, now_s)
  local t = {id = id, u = user, cid = cid, side = side, type = otype, tif = tif, po = argv[6],
    stp = stp, price = price, amount = amount, qb = qb, ps = argv[7], as = argv[8], qs = argv[9],
    filled = 0, cost = 0, status = 'NEW', ts = now_s, mem = ''}
  emit_accepted(log, t)
  t.aseq = cfg.seq
  local levels = {}
  local opp_best = read_book_best(P, side == 'buy' and 'sell' or 'buy')
  local more = false
  if po == 1 and opp_best and crosses(t, opp_best) then
    t.status = 'REJECTED'
    emit_done(log, t, 'REJECTED', 'POST_ONLY_WOULD_TAKE')
    write_order(P, t, now_s)
  elseif tif == 'FOK' and not fok_fillable(P, cfg, t, max_fills) then
    t.status = 'EXPIRED'
    emit_done(log, t, 'EXPIRED', 'FOK')
    write_order(P, t, now_s)
  else
    if opp_best and crosses(t, opp_best) then
      more = match(P, cfg, log, levels, t, max_fills, now_s)
    end
    if more and t.status ~= 'CANCELED' then
      -- continue in a further call (bounded work per call); not on the book yet
      t.status = t.filled > 0 and 'PARTIALLY_FILLED' or 'NEW'
      flush_levels(levels, log, P)
      write_order(P, t, now_s)
      redis.call('HSET', P .. 'o:' .. t.id, 'cont', fmt(t.aseq))
    else
      more = false
      finish(P, cfg, log, levels, t, now_s)
    end
  end
  local events = commit_log(log, P)
  return order_reply('new', t, events, more)
end

-- mkt_continue: resume matching of an order that stopped at max_fills.
-- KEYS[1] {m:X}:cfg
-- ARGV  order id, now_ms, max_fills ('' = default)
-- Returns as mkt_place (kind 'new'; kind 'replay' when nothing was left to do).
local function mkt_continue(keys, argv)
  local P = prefix_of(keys[1])
  local id = argv[1]
  if not valid_id(id) then return fail('INVALID_PARAM', 'bad order id') end
  local now = int_arg(argv[2], false)
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local max_fills = MAX_FILLS_DEFAULT
  if argv[3] and argv[3] ~= '' then
    max_fills = int_arg(argv[3], false)
    if not max_fills then return fail('INVALID_PARAM', 'bad max_fills') end
  end
  local t = read_order(P, id)
  if not t then return fail('UNKNOWN_ORDER', 'unknown order') end
  local cont = redis.call('HGET', P .. 'o:' .. id, 'cont')
  if not cont then return order_reply('replay', t, '[]', false) end
  local cfg = load_cfg(keys[1])
  t.aseq = tonumber(cont)
  local now_s = argv[2]
  local log = new_log(cfg, now_s)
  local levels = {}
  local more = match(P, cfg, log, levels, t, max_fills, now_s)
  if more and t.status ~= 'CANCELED' then
    t.status = t.filled > 0 and 'PARTIALLY_FILLED' or 'NEW'
    flush_levels(levels, log, P)
    write_order(P, t, now_s)
  else
    more = false
    redis.call('HDEL', P .. 'o:' .. id, 'cont')
    finish(P, cfg, log, levels, t, now_s)
  end
  local events = commit_log(log, P)
  return order_reply('new', t, events, more)
end

-- Remove a resting order from the book and emit its done event (no validation).
local function cancel_resting(P, log, levels, o, msg, now_s)
  local book = side_keys(P, o.side)
  redis.call('ZREM', book, o.mem)
  level_delta(levels, o.side, o.price, o.ps, -(o.amount - o.filled))
  o.status = 'CANCELED'
  write_order(P, o, now_s)
  emit_done(log, o, 'CANCELED', msg)
end

local function is_open(o)
  return o and (o.status == 'NEW' or o.status == 'PARTIALLY_FILLED') and o.mem ~= ''
end

-- mkt_cancel: cancel one resting order of `user`.
-- KEYS[1] {m:X}:cfg
-- ARGV  order id, user, now_ms
-- Returns {'new', events_json, status, filled, cost, 0, order_id}.
-- Errors (nothing written): UNKNOWN_MARKET, MARKET_NOT_TRADING (halted),
--   UNKNOWN_ORDER (missing, not open, or another user's: the same answer).
local function mkt_cancel(keys, argv)
  local P = prefix_of(keys[1])
  local id, user = argv[1], argv[2]
  local now = int_arg(argv[3], false)
  if not valid_id(id) or not valid_id(user) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  local cfg = load_cfg(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if cfg.status == 'HALT' then return fail('MARKET_NOT_TRADING', 'market is HALT') end
  local o = read_order(P, id)
  if not is_open(o) or o.u ~= user then return fail('UNKNOWN_ORDER', 'unknown order') end
  local log = new_log(cfg, argv[3])
  local levels = {}
  cancel_resting(P, log, levels, o, 'USER', argv[3])
  flush_levels(levels, log, P)
  local events = commit_log(log, P)
  return order_reply('new', o, events, false)
end

-- mkt_cancel_many: cancel those of the given orders that are open and belong to `user`
-- (the caller lists the user's open order ids from the account shard).
-- KEYS[1] {m:X}:cfg
-- ARGV  user, now_ms, order id...
-- Returns {events_json, canceled order id...}.
-- Errors (nothing written): INVALID_PARAM, UNKNOWN_MARKET, MARKET_NOT_TRADING (halted).
local function mkt_cancel_many(keys, argv)
  local P = prefix_of(keys[1])
  local user = argv[1]
  local now = int_arg(argv[2], false)
  if not valid_id(user) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  for i = 3, #argv do
    if not valid_id(argv[i]) then return fail('INVALID_PARAM', 'bad order id') end
  end
  local cfg = load_cfg(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if cfg.status == 'HALT' then return fail('MARKET_NOT_TRADING', 'market is HALT') end
  local log = new_log(cfg, argv[2])
  local levels = {}
  local out = {'[]'}
  for i = 3, #argv do
    local o = read_order(P, argv[i])
    if is_open(o) and o.u == user then
      cancel_resting(P, log, levels, o, 'USER', argv[2])
      out[#out + 1] = o.id
    end
  end
  flush_levels(levels, log, P)
  out[1] = commit_log(log, P)
  return out
end

-- mkt_reduce: lower a resting order's amount, keeping its time priority.
-- KEYS[1] {m:X}:cfg
-- ARGV  order id, user, new amount (filled < new < amount, multiple of lot), now_ms
-- Returns {'new', events_json, status, filled, cost, 0, order_id}.
-- Errors (nothing written): INVALID_PARAM, BAD_PRECISION, UNKNOWN_MARKET,
--   MARKET_NOT_TRADING (halted), UNKNOWN_ORDER.
local function mkt_reduce(keys, argv)
  local P = prefix_of(keys[1])
  local id, user = argv[1], argv[2]
  local new_amount = int_arg(argv[3], false)
  local now = int_arg(argv[4], false)
  if not valid_id(id) or not valid_id(user) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  if not new_amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  local cfg = load_cfg(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if cfg.status == 'HALT' then return fail('MARKET_NOT_TRADING', 'market is HALT') end
  local o = read_order(P, id)
  if not is_open(o) or o.u ~= user then return fail('UNKNOWN_ORDER', 'unknown order') end
  if new_amount % cfg.lot ~= 0 then return fail('BAD_PRECISION', 'amount is not a multiple of the size increment') end
  if new_amount >= o.amount or new_amount <= o.filled then
    return fail('INVALID_PARAM', 'new amount must be below the amount and above the filled size')
  end
  local log = new_log(cfg, argv[4])
  local levels = {}
  level_delta(levels, o.side, o.price, o.ps, new_amount - o.amount)
  o.amount = new_amount
  o.as = argv[3]
  redis.call('HSET', P .. 'o:' .. id, 'amount', argv[3], 'uts', argv[4])
  emit(log, string.format('"e":"reduced","id":"%s","u":"%s","side":"%s","amount":%s',
    o.id, o.u, o.side, fmt(new_amount)))
  flush_levels(levels, log, P)
  local events = commit_log(log, P)
  return order_reply('new', o, events, false)
end

-- mkt_tombstone: mark an order id that never reached the market as unusable.
-- KEYS[1] {m:X}:cfg
-- ARGV  order id, now_ms
-- Returns 1 if tombstoned (or already a tombstone), 0 if the order exists.
local function mkt_tombstone(keys, argv)
  local P = prefix_of(keys[1])
  local id = argv[1]
  local now = int_arg(argv[2], false)
  if not valid_id(id) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  local st = redis.call('HGET', P .. 'o:' .. id, 'status')
  if st == 'ABORTED' then return 1 end
  if st then return 0 end
  redis.call('HSET', P .. 'o:' .. id, 'id', id, 'status', 'ABORTED', 'uts', fmt(now))
  redis.call('PEXPIRE', P .. 'o:' .. id, TERMINAL_TTL_MS)
  return 1
end

-- mkt_configure: create a market or change its configuration/status.
-- KEYS[1] {m:X}:cfg
-- ARGV  now_ms, then field/value pairs among base quote bscale tick lot min maxn mfee tfee
--       status. Creating needs all of them but status (default TRADING).
-- Returns the events JSON ('[]' when nothing changed).
-- Errors (nothing written): INVALID_PARAM.
local CONFIG_INTS = {bscale = true, tick = true, lot = true, min = true, maxn = true, mfee = true, tfee = true}
local function mkt_configure(keys, argv)
  local P = prefix_of(keys[1])
  local now = int_arg(argv[1], false)
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local cur = redis.call('HGETALL', keys[1])
  local c = {}
  for i = 1, #cur, 2 do c[cur[i]] = cur[i + 1] end
  local creating = c.seq == nil
  if (#argv - 1) % 2 ~= 0 then return fail('INVALID_PARAM', 'field/value pairs expected') end
  for i = 2, #argv, 2 do
    local f, v = argv[i], argv[i + 1]
    if CONFIG_INTS[f] then
      local n = int_arg(v, f == 'mfee' or f == 'tfee' or f == 'bscale')
      if not n then return fail('INVALID_PARAM', f .. ' must be a positive integer') end
      if not creating and f ~= 'mfee' and f ~= 'tfee' and f ~= 'min' and f ~= 'maxn' and c[f] ~= v then
        return fail('INVALID_PARAM', f .. ' cannot change on an existing market')
      end
      c[f] = v
    elseif f == 'status' then
      if v ~= 'TRADING' and v ~= 'HALT' and v ~= 'CANCEL_ONLY' then return fail('INVALID_PARAM', 'bad status') end
      c[f] = v
    elseif f == 'base' or f == 'quote' then
      if not creating and c[f] ~= v then return fail('INVALID_PARAM', f .. ' cannot change') end
      if not string.find(v, '^[A-Z0-9]+$') then return fail('INVALID_PARAM', 'bad asset') end
      c[f] = v
    else
      return fail('INVALID_PARAM', 'unknown field ' .. f)
    end
  end
  for _, f in ipairs({'base', 'quote', 'bscale', 'tick', 'lot', 'min', 'maxn', 'mfee', 'tfee'}) do
    if not c[f] then return fail('INVALID_PARAM', 'missing ' .. f) end
  end
  local tick, lot, bscale = tonumber(c.tick), tonumber(c.lot), tonumber(c.bscale)
  if bscale > 18 then return fail('INVALID_PARAM', 'bad base scale') end
  local unit = 10 ^ bscale
  if (tick * lot) % unit ~= 0 or tick * lot > MAX_INT then
    return fail('INVALID_PARAM', 'price_increment x size_increment must be a multiple of the quote minimal unit')
  end
  if tonumber(c.mfee) > 1000 or tonumber(c.tfee) > 1000 then return fail('INVALID_PARAM', 'fee above 1000 bps') end
  if tonumber(c.min) % lot ~= 0 then return fail('INVALID_PARAM', 'min size is not a multiple of the size increment') end
  c.mult = fmt(tick * lot / unit)
  c.status = c.status or 'TRADING'
  local args = {}
  local body = {}
  for _, f in ipairs({'base', 'quote', 'bscale', 'tick', 'lot', 'min', 'maxn', 'mult', 'mfee', 'tfee', 'status'}) do
    args[#args + 1] = f
    args[#args + 1] = c[f]
    if f == 'base' or f == 'quote' or f == 'status' then
      body[#body + 1] = string.format('"%s":"%s"', f, c[f])
    else
      body[#body + 1] = string.format('"%s":%s', f, c[f])
    end
  end
  if creating then
    args[#args + 1] = 'seq'
    args[#args + 1] = '0'
    args[#args + 1] = 'tid'
    args[#args + 1] = '0'
  end
  redis.call('HSET', keys[1], unpack(args))
  local cfg = load_cfg(keys[1])
  local log = new_log(cfg, argv[1])
  emit(log, '"e":"market",' .. table.concat(body, ','))
  return commit_log(log, P)
end

-- mkt_depth: L2 depth, read atomically with the market seq.
-- KEYS[1] {m:X}:cfg
-- ARGV  levels per side
-- Returns {seq, {bid price, size, ...}, {ask price, size, ...}} (best first), or an
-- UNKNOWN_MARKET error.
local function mkt_depth(keys, argv)
  local P = prefix_of(keys[1])
  local n = int_arg(argv[1], false)
  if not n then return fail('INVALID_PARAM', 'bad depth') end
  local seq = redis.call('HGET', keys[1], 'seq')
  if not seq then return fail('UNKNOWN_MARKET', 'unknown market') end
  local out = {seq}
  for _, side in ipairs({'buy', 'sell'}) do
    local _, lv, dp = side_keys(P, side)
    local prices = redis.call('ZRANGE', lv, 0, n - 1)
    local flat = {}
    if #prices > 0 then
      local fields = {}
      for i = 1, #prices do fields[i] = dp .. prices[i] end
      local sizes = redis.call('HMGET', P .. 'd', unpack(fields))
      for i = 1, #prices do
        flat[#flat + 1] = prices[i]
        flat[#flat + 1] = sizes[i]
      end
    end
    out[#out + 1] = flat
  end
  return out
end

redis.register_function('mkt_place', mkt_place)
redis.register_function('mkt_continue', mkt_continue)
redis.register_function('mkt_cancel', mkt_cancel)
redis.register_function('mkt_cancel_many', mkt_cancel_many)
redis.register_function('mkt_reduce', mkt_reduce)
redis.register_function('mkt_tombstone', mkt_tombstone)
redis.register_function('mkt_configure', mkt_configure)
redis.register_function{function_name = 'mkt_depth', callback = mkt_depth, flags = {'no-writes'}}
