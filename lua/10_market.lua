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
--
-- Order record (hash): the fields matching reads and writes on every fill are
-- separate (status u amount filled cost uts); the rest, which never changes once
-- written, is packed into one field d = 'id|cid|side|type|tif|po|stp|price|qb|ts|mem'
-- (ids never contain '|'; mem, the zset member or '', comes last and contains one).
-- A hash of few fields is much cheaper to create and update than one of 17.
--
-- Cost model (Valkey, Lua 5.1): a call is dominated by the number of redis.call's,
-- the number of fields they pass/return, number -> string conversions and table
-- creation. Hot paths therefore reuse the strings they received (ARGV, replies,
-- zset scores) and format each number at most once.

do -- the market functions' locals stay out of the library's main scope (Lua 5.1
   -- allows 200 locals per function, and the library is one chunk)

-- Globals the hot paths use, as upvalues (cheaper than a global + field lookup on
-- every use). The library code cannot read them at load time, so every function
-- binds them first.
local call, tonumber, unpack, string_sub, string_byte, string_match, string_format, table_concat
local function bind()
  call, tonumber, unpack = redis.call, _G.tonumber, _G.unpack
  string_sub, string_byte, string_match, table_concat = string.sub, string.byte, string.match, table.concat
  string_format = string.format
end

local MAX_FILLS_DEFAULT = 200
local TERMINAL_TTL_MS = '86400000'
local ZEROS = '0000000000000000'
local D_PATTERN = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$'

local function prefix_of(cfg_key)
  return string_sub(cfg_key, 1, #cfg_key - 3)
end

local function side_keys(P, side)
  -- returns book, levels, depth-field prefix of `side`
  if side == 'buy' then return P .. 'bids', P .. 'lv:b', 'b' end
  return P .. 'asks', P .. 'lv:a', 'a'
end

-- The market config as numbers, or nil if there is no market (mkt_configure writes
-- all fields at once, so status exists exactly when the market does). The parsed
-- table is kept per market and reused while the config strings are the same ones
-- (Lua strings are interned: ~= compares pointers), only status, seq and tid are
-- refreshed: a pure memo of tonumber(), no state of its own. Fees and the trade id
-- are read only when `trading` (an order that crosses); match advances cfg.tid.
local CFG_MEMO = {}
local function load_cfg(cfg_key, trading)
  local v
  if trading then
    v = call('HMGET', cfg_key, 'status', 'seq', 'tick', 'lot', 'min', 'maxn', 'mult', 'mfee', 'tfee', 'tid')
  else
    v = call('HMGET', cfg_key, 'status', 'seq', 'tick', 'lot', 'min', 'maxn', 'mult')
  end
  if not v[1] then return nil end
  local c = CFG_MEMO[cfg_key]
  if not c or c.tick_s ~= v[3] or c.lot_s ~= v[4] or c.min_s ~= v[5] or c.maxn_s ~= v[6] or c.mult_s ~= v[7] then
    c = {
      tick_s = v[3], lot_s = v[4], min_s = v[5], maxn_s = v[6], mult_s = v[7],
      tick = tonumber(v[3]), lot = tonumber(v[4]), min = tonumber(v[5]), maxn = tonumber(v[6]),
      mult = tonumber(v[7]),
    }
    CFG_MEMO[cfg_key] = c
  end
  c.status = v[1]
  c.seq = tonumber(v[2])
  c.tid = nil
  if trading then
    if c.mfee_s ~= v[8] or c.tfee_s ~= v[9] then
      c.mfee_s, c.tfee_s, c.mfee, c.tfee = v[8], v[9], tonumber(v[8]), tonumber(v[9])
    end
    c.tid = tonumber(v[10])
  end
  return c
end

-- What cancel/reduce need of the config: status, seq, lot (nil if no market).
local function load_cfg_small(cfg_key)
  local v = call('HMGET', cfg_key, 'status', 'seq', 'lot')
  if not v[1] then return nil end
  return {status = v[1], seq = tonumber(v[2]), lot = tonumber(v[3])}
end

-- Event log of one call: events get consecutive seqs from seq + 1. The log table is
-- also the array of the JSON pieces (log[1..log.n]): '[' then one text per event,
-- each starting with its separator ('' for the first, then ','), so the array is
-- joined once at the end (every new Lua string is hashed in full: no intermediate
-- copies of the whole JSON). first/last keep the first and last seq, formatted.
-- The table is reused from call to call (a function runs alone and commits its
-- log before returning): only log[1..n+1] is ever read, stale entries above are not.
local LOG = {'['}
local function new_log(seq, now_s)
  local log = LOG
  log.seq, log.now, log.n, log.sep = seq, now_s, 1, ''
  log.first, log.last, log.tid, log.tid_s = nil, nil, nil, nil
  return log
end

-- The next event's separator and seq (formatted). Emitters build each event with
-- one concatenation: '<sep>{"seq":<seq>,"ts":<now>,...}'.
local function next_seq(log)
  local seq = log.seq + 1
  log.seq = seq
  local s = string_format('%d', seq)
  local sep = log.sep
  if sep == '' then
    log.first = s
    log.sep = ','
  end
  log.last = s
  return sep, s
end

-- A generic event with body `body` (the JSON members after seq and ts).
local function emit(log, body)
  local sep, s = next_seq(log)
  local n = log.n + 1
  log.n = n
  log[n] = sep .. '{"seq":' .. s .. ',"ts":' .. log.now .. ',' .. body .. '}'
end

-- Persist seq (and tid, if trades happened) and append the call's events as one
-- stream entry; returns the JSON.
local function commit_log(log, P)
  local n = log.n
  if n == 1 then return '[]' end
  log[n + 1] = ']'
  local json = table_concat(log, '', 1, n + 1)
  for i = 2, n + 1 do log[i] = nil end -- keep no event text alive until the next call
  if log.tid then
    call('HSET', P .. 'cfg', 'seq', log.last, 'tid', log.tid_s)
  else
    call('HSET', P .. 'cfg', 'seq', log.last)
  end
  call('XADD', P .. 'ev', '*', 'f', log.first, 'l', log.last, 'e', json)
  return json
end

local function emit_accepted(log, o)
  local sep, s = next_seq(log)
  local n = log.n + 1
  log.n = n
  log[n] = sep .. '{"seq":' .. s .. ',"ts":' .. log.now .. ',"e":"accepted","id":"' .. o.id .. '","u":"' ..
    o.u .. '","cid":"' .. o.cid .. '","side":"' .. o.side .. '","type":"' .. o.type .. '","tif":"' ..
    o.tif .. '","po":' .. o.po .. ',"stp":"' .. o.stp .. '","price":' .. o.ps .. ',"amount":' .. o.as ..
    ',"qb":' .. o.qs .. '}'
  return s
end

-- filled_s/cost_s: the order's filled and cost, formatted.
local function emit_done(log, id, u, side, amount_s, reason, msg, filled_s, cost_s)
  local sep, s = next_seq(log)
  local n = log.n + 1
  log.n = n
  log[n] = sep .. '{"seq":' .. s .. ',"ts":' .. log.now .. ',"e":"done","id":"' .. id .. '","u":"' .. u ..
    '","side":"' .. side .. '","reason":"' .. reason .. '","msg":"' .. msg .. '","amount":' .. amount_s ..
    ',"filled":' .. filled_s .. ',"cost":' .. cost_s .. '}'
end

-- Level changes are accumulated per call and written/emitted once per level.
local function level_delta(levels, side, price, price_s, delta)
  local l = levels.last
  if not l or l.ps ~= price_s or l.side ~= side then
    local k = side .. price_s
    l = levels[k]
    if not l then
      l = {side = side, price = price, ps = price_s, delta = 0}
      levels[k] = l
      levels[#levels + 1] = l
    end
    levels.last = l
  end
  l.delta = l.delta + delta
end

-- Apply `delta` to one level (depth hash, levels zset) and emit its level event.
local function flush_level(log, P, side, ps, delta)
  local dkey = P .. 'd'
  local buy = side == 'buy'
  local field = (buy and 'b' or 'a') .. ps
  local size = call('HINCRBY', dkey, field, delta)
  local size_s
  if size <= 0 then
    call('HDEL', dkey, field)
    call('ZREM', buy and P .. 'lv:b' or P .. 'lv:a', ps)
    size_s = '0'
  else
    if size == delta then
      call('ZADD', buy and P .. 'lv:b' or P .. 'lv:a', buy and '-' .. ps or ps, ps)
    end
    if size < 9007199254740992 then
      size_s = string_format('%d', size)
    else
      -- from 2^53 on, a Lua number (a double) is not exact, but the hash is (HINCRBY
      -- counts in 64-bit integers): read the level's size back as a string. Levels
      -- add up the orders of many users, so they can pass what one order holds.
      size_s = call('HGET', dkey, field)
    end
  end
  local sep, s = next_seq(log)
  local n = log.n + 1
  log.n = n
  log[n] = sep .. '{"seq":' .. s .. ',"ts":' .. log.now .. ',"e":"level","side":"' .. side ..
    '","price":' .. ps .. ',"size":' .. size_s .. '}'
end

local function flush_levels(levels, log, P)
  for i = 1, #levels do
    local l = levels[i]
    if l.delta ~= 0 then flush_level(log, P, l.side, l.ps, l.delta) end
  end
end

-- An order as a table; ps/as/qs keep the price/amount/budget strings as stored,
-- fs/cs the filled/cost strings as stored.
local function read_order(P, id)
  local key = P .. 'o:' .. id
  local v = call('HMGET', key, 'd', 'u', 'amount', 'filled', 'cost', 'status')
  local d = v[1]
  local oid, cid, side, otype, tif, po, stp, ps, qs, ts, mem
  if d then
    oid, cid, side, otype, tif, po, stp, ps, qs, ts, mem = string_match(d, D_PATTERN)
  else
    if not v[6] then return nil end
    -- a record of the former one-field-per-attribute layout (or a tombstone: nil)
    local w = call('HMGET', key, 'id', 'cid', 'side', 'type', 'tif', 'po', 'stp', 'price', 'qb', 'ts', 'mem')
    if not w[3] then return nil end
    oid, cid, side, otype, tif, po, stp, ps, qs, ts, mem = unpack(w)
  end
  return {
    id = oid, u = v[2], cid = cid, side = side, type = otype, tif = tif, po = po, stp = stp,
    ps = ps, as = v[3], qs = qs, price = tonumber(ps), amount = tonumber(v[3]), qb = tonumber(qs),
    fs = v[4], cs = v[5], filled = tonumber(v[4]), cost = tonumber(v[5]), status = v[6], ts = ts,
    mem = mem,
  }
end

-- Write the whole record; filled_s/cost_s are o.filled/o.cost formatted.
local function write_order(P, o, now_s, filled_s, cost_s)
  local key = P .. 'o:' .. o.id
  call('HSET', key, 'status', o.status, 'u', o.u, 'amount', o.as, 'filled', filled_s,
    'cost', cost_s, 'uts', now_s, 'd', o.id .. '|' .. o.cid .. '|' .. o.side .. '|' .. o.type .. '|' ..
    o.tif .. '|' .. o.po .. '|' .. o.stp .. '|' .. o.ps .. '|' .. o.qs .. '|' .. o.ts .. '|' .. o.mem)
  if o.status ~= 'NEW' and o.status ~= 'PARTIALLY_FILLED' then
    call('PEXPIRE', key, TERMINAL_TTL_MS)
  end
end

local function order_reply(kind, o, events, more, filled_s, cost_s)
  return {kind, events, o.status, filled_s, cost_s, more and 1 or 0, o.id}
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
-- prevention, within `limit` makers and, for a market buy by amount, within its
-- quote budget (price protection)? Reads only.
local function fok_fillable(P, cfg, t, limit)
  local opp = side_keys(P, t.side == 'buy' and 'sell' or 'buy')
  local need = t.amount
  local budget = t.qb
  local cost = 0
  local seen = 0
  while seen < limit do
    local batch = call('ZRANGE', opp, seen, seen + 15, 'WITHSCORES')
    if #batch == 0 then return false end
    for i = 1, #batch, 2 do
      local price = math.abs(tonumber(batch[i + 1]))
      if not crosses(t, price) then return false end
      local mid = string_sub(batch[i], 18)
      local m = call('HMGET', P .. 'o:' .. mid, 'u', 'amount', 'filled')
      if m[1] == t.u then
        if t.stp ~= 'cancel_oldest' then return false end
      else
        local take = tonumber(m[2]) - tonumber(m[3])
        if take > need then take = need end
        if budget > 0 then
          cost = cost + (price / cfg.tick) * (take / cfg.lot) * cfg.mult
          if cost > budget then return false end
        end
        need = need - take
        if need <= 0 then return true end
      end
      seen = seen + 1
      if seen >= limit then return false end
    end
  end
  return false
end

-- Up to `count` makers from position `offset` that an order (side, type, price
-- string) crosses: {member, score, ...}. The opposite book's range score <= bound
-- (asks are scored price, bids -price; a market order crosses everything).
local function crossing_makers(P, side, otype, ps, offset, count)
  local bound = otype == 'market' and '+inf' or (side == 'buy' and ps or '-' .. ps)
  return call('ZRANGE', side == 'buy' and P .. 'asks' or P .. 'bids', '-inf', bound, 'BYSCORE',
    'LIMIT', offset, count, 'WITHSCORES')
end

-- Match taker `t` against the opposite side, starting with `batch` (the first
-- crossing makers, nil to fetch them). Only crossing makers are fetched (a
-- BYSCORE range), so running out of them is where a limit order stops. Returns
-- true when it stopped only because it hit `max_fills` (more liquidity may remain).
local function match(P, cfg, log, levels, t, max_fills, now_s, batch)
  local tbuy = t.side == 'buy'
  local tside, tid_, tu = t.side, t.id, t.u
  local opp_side = tbuy and 'sell' or 'buy'
  local okey = P .. 'o:'
  local tick, lot, mult, maxn = cfg.tick, cfg.lot, cfg.mult, cfg.maxn
  local mfee_bps, tfee_bps = cfg.mfee, cfg.tfee
  local t_amount, t_qb, t_filled, t_cost = t.amount, t.qb, t.filled, t.cost
  local stp = t.stp
  local tid = cfg.tid
  local tid0 = tid
  local last_tid_s
  local removed
  local nremoved = 0
  local fills = 0
  local stopped_by_limit = false
  local stop = false
  local last_score, price_s, price
  local floor = math.floor
  while not stop do
    if (t_amount > 0 and t_filled >= t_amount) or (t_qb > 0 and t_cost >= t_qb) or t.status == 'CANCELED' then
      break
    end
    if fills >= max_fills then stopped_by_limit = true break end
    if not batch then batch = crossing_makers(P, tside, t.type, t.ps, nremoved, 16) end
    local nb = #batch
    if nb == 0 then break end
    local progressed = false
    for i = 1, nb, 2 do
      if (t_amount > 0 and t_filled >= t_amount) or (t_qb > 0 and t_cost >= t_qb) or fills >= max_fills then
        break
      end
      local member = batch[i]
      local score = batch[i + 1]
      if score ~= last_score then
        -- a price as the string a zset score reply carries (bids are stored negated)
        last_score = score
        price_s = string_byte(score, 1) == 45 and string_sub(score, 2) or score
        price = tonumber(price_s)
      end
      local mid = string_sub(member, 18)
      local mkey = okey .. mid
      local mv = call('HMGET', mkey, 'u', 'amount', 'filled', 'cost')
      local mu, mamount_s, mfilled_s, mcost_s = mv[1], mv[2], mv[3], mv[4]
      local mamount = tonumber(mamount_s)
      local mfilled = mfilled_s == '0' and 0 or tonumber(mfilled_s)
      local mcost = mcost_s == '0' and 0 or tonumber(mcost_s)
      local maker_rem = mamount - mfilled
      if mu == tu then
        -- self-trade prevention, decided by the taker's mode
        if stp == 'cancel_oldest' or stp == 'cancel_both' then
          call('HSET', mkey, 'status', 'CANCELED', 'uts', now_s)
          call('PEXPIRE', mkey, TERMINAL_TTL_MS)
          nremoved = nremoved + 1
          removed = removed or {}
          removed[nremoved] = member
          level_delta(levels, opp_side, price, price_s, -maker_rem)
          emit_done(log, mid, mu, opp_side, mamount_s, 'CANCELED', 'STP', mfilled_s, mcost_s)
        end
        if stp == 'cancel_newest' or stp == 'cancel_both' then
          t.status = 'CANCELED'
          t.msg = 'STP'
          break
        end
        progressed = true
      else
        -- the part of the maker's remainder the taker may take at `price`, bounded
        -- by the taker's remaining amount and quote budget (a multiple of lot)
        local q = maker_rem
        if t_amount > 0 then
          local rem = t_amount - t_filled
          if rem < q then q = rem end
        end
        if t_qb > 0 then
          local per_lot = (price / tick) * mult
          local lots = floor((t_qb - t_cost) / per_lot)
          -- the budget, not the book, ends it: what is left after this fill buys no lot
          if lots * lot <= q then t.spent = true end
          if lots * lot < q then q = lots * lot end
        end
        if q <= 0 then stop = true break end
        local quote = (price / tick) * (q / lot) * mult
        if t_cost + quote > maxn then
          t.capped = true -- the order's cost would pass max notional: expire the rest
          stop = true
          break
        end
        -- fees as fee_of() (00_common.lua), inlined: floor(y) = y - y % 1 (y >= 0)
        local mx, tx
        if tbuy then mx, tx = quote, q else mx, tx = q, quote end
        local mfee, tfee = 0, 0
        if mfee_bps ~= 0 then
          local hi, lo = mx / 10000, (mx % 10000) * mfee_bps + 9999
          mfee = (hi - hi % 1) * mfee_bps + (lo / 10000 - (lo / 10000) % 1)
        end
        if tfee_bps ~= 0 then
          local hi, lo = tx / 10000, (tx % 10000) * tfee_bps + 9999
          tfee = (hi - hi % 1) * tfee_bps + (lo / 10000 - (lo / 10000) % 1)
        end
        tid = tid + 1
        local q_s
        if q == maker_rem and mfilled == 0 then q_s = mamount_s else q_s = string_format('%d', q) end
        local quote_s = string_format('%d', quote)
        mfilled = mfilled + q
        mcost = mcost + quote
        t_filled = t_filled + q
        t_cost = t_cost + quote
        fills = fills + 1
        level_delta(levels, opp_side, price, price_s, -q)
        last_tid_s = string_format('%d', tid)
        -- the maker's filled and cost after this trade (mfilled, mcost in the event) and
        -- its amount (mamount: pushes must not read it later, an amend may change it)
        local mfull = mfilled >= mamount
        mcost_s = mcost == quote and quote_s or string_format('%d', mcost)
        local mfilled_s = mfull and mamount_s or (mfilled == q and q_s or string_format('%d', mfilled))
        local sep, s = next_seq(log)
        local n = log.n + 1
        log.n = n
        log[n] = sep .. '{"seq":' .. s .. ',"ts":' .. log.now .. ',"e":"trade","tid":' .. last_tid_s ..
          ',"price":' .. price_s .. ',"size":' .. q_s .. ',"quote":' .. quote_s .. ',"side":"' .. tside ..
          '","maker":"' .. mid .. '","taker":"' .. tid_ .. '","mu":"' .. mu .. '","tu":"' .. tu ..
          '","mfee":' .. string_format('%d', mfee) .. ',"tfee":' .. string_format('%d', tfee) ..
          ',"mfilled":' .. mfilled_s .. ',"mcost":' .. mcost_s .. ',"mamount":' .. mamount_s .. '}'
        if mfull then
          nremoved = nremoved + 1
          removed = removed or {}
          removed[nremoved] = member
          call('HSET', mkey, 'filled', mamount_s, 'cost', mcost_s, 'status', 'FILLED', 'uts', now_s)
          call('PEXPIRE', mkey, TERMINAL_TTL_MS)
          emit_done(log, mid, mu, opp_side, mamount_s, 'FILLED', '', mamount_s, mcost_s)
        else
          -- the maker keeps a remainder only when the taker can take no more
          call('HSET', mkey, 'filled', mfilled_s, 'cost', mcost_s, 'status', 'PARTIALLY_FILLED',
            'uts', now_s)
          stop = true
          break
        end
        progressed = true
      end
    end
    batch = nil
    if not progressed then break end
  end
  t.filled, t.cost = t_filled, t_cost
  if nremoved > 0 then call('ZREM', tbuy and P .. 'asks' or P .. 'bids', unpack(removed)) end
  if tid ~= tid0 then
    cfg.tid = tid
    log.tid = tid
    log.tid_s = last_tid_s
  end
  return stopped_by_limit
end

-- filled and cost of `o`, formatted (as is the amount string).
local function fc_strings(o)
  local filled_s = o.filled == o.amount and o.as or fmt(o.filled)
  return filled_s, fmt(o.cost)
end

-- Decide what happens to the taker after matching: rest, expire, fill, cancel.
-- Returns the taker's filled and cost, formatted.
local function finish(P, cfg, log, levels, t, now_s)
  local reason, msg
  if t.status == 'CANCELED' then
    reason, msg = 'CANCELED', t.msg or 'STP'
  elseif taker_done(t) then
    t.status = 'FILLED'
    reason, msg = 'FILLED', ''
  elseif t.capped then
    t.status = 'EXPIRED'
    reason, msg = 'EXPIRED', 'MAX_NOTIONAL'
  elseif t.type == 'market' then
    -- a market buy by quote_amount is FILLED when its budget is spent (what is left
    -- buys no lot at the last price reached); when the book runs out first it is
    -- EXPIRED with what it filled, as any market order that finds no more liquidity
    if t.amount == 0 and t.filled > 0 and t.spent then
      t.status = 'FILLED'
      reason, msg = 'FILLED', ''
    else
      t.status = 'EXPIRED'
      reason, msg = 'EXPIRED', 'NO_LIQUIDITY'
    end
  elseif t.tif == 'GTC' then
    t.status = t.filled > 0 and 'PARTIALLY_FILLED' or 'NEW'
    local aseq = t.aseq_s
    t.mem = string_sub(ZEROS, #aseq + 1) .. aseq .. '|' .. t.id
    if t.side == 'buy' then
      call('ZADD', P .. 'bids', '-' .. t.ps, t.mem)
    else
      call('ZADD', P .. 'asks', t.ps, t.mem)
    end
    if #levels == 0 then
      -- it only rests: its own level is the only one (no level table needed)
      flush_level(log, P, t.side, t.ps, t.amount - t.filled)
    else
      level_delta(levels, t.side, t.price, t.ps, t.amount - t.filled)
    end
  else
    t.status = 'EXPIRED'
    reason, msg = 'EXPIRED', t.tif
  end
  local filled_s, cost_s = fc_strings(t)
  if reason then emit_done(log, t.id, t.u, t.side, t.as, reason, msg, filled_s, cost_s) end
  flush_levels(levels, log, P)
  write_order(P, t, now_s, filled_s, cost_s)
  return filled_s, cost_s
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
--   MARKET_NOT_TRADING, UNKNOWN_ORDER (id tombstoned by the hold reconciler),
--   ORDER_ID_TAKEN (the id is another user's order: the caller retries with a new id).
local function mkt_place(keys, argv)
  bind()
  local P = prefix_of(keys[1])
  local id, user, side, otype, tif = argv[1], argv[2], argv[3], argv[4], argv[5]
  if not valid_id(id) or not valid_id(user) then return fail('INVALID_PARAM', 'bad order or user id') end
  local okey = P .. 'o:' .. id
  local known = call('HGET', okey, 'status')
  if known then
    if known == 'ABORTED' then return fail('UNKNOWN_ORDER', 'order id expired') end
    local o = read_order(P, id)
    -- another user's order is never anyone else's replay (an id generated twice)
    if o.u ~= user then return fail('ORDER_ID_TAKEN', 'order id belongs to another order') end
    return order_reply('replay', o, '[]', false, o.fs, o.cs)
  end
  -- the first makers the order would cross (none for an order that only rests), read
  -- before the config so that only an order that trades reads fees and trade id
  -- (reads only: every check still comes before the first write)
  local batch
  if (side == 'buy' or side == 'sell') and (otype == 'limit' or otype == 'market') and int_arg(argv[7], true) then
    batch = crossing_makers(P, side, otype, argv[7], 0, 4)
  end
  local crossing = batch ~= nil and #batch > 0
  local cfg = load_cfg(keys[1], crossing)
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
    local prev = call('GET', ckey)
    if prev then
      local o = read_order(P, prev)
      if o then return order_reply('duplicate', o, '[]', false, o.fs, o.cs) end
    end
  end
  -- validated: writes start here
  if cid ~= '' then call('SET', P .. 'c:' .. user .. ':' .. cid, id, 'PX', TERMINAL_TTL_MS) end
  local now_s = argv[12]
  local log = new_log(cfg.seq, now_s)
  local t = {id = id, u = user, cid = cid, side = side, type = otype, tif = tif, po = argv[6],
    stp = stp, price = price, amount = amount, qb = qb, ps = argv[7], as = argv[8], qs = argv[9],
    filled = 0, cost = 0, status = 'NEW', ts = now_s, mem = ''}
  t.aseq_s = emit_accepted(log, t)
  local levels = {}
  local more = false
  local filled_s, cost_s = '0', '0'
  if po == 1 and crossing then
    t.status = 'REJECTED'
    emit_done(log, id, user, side, t.as, 'REJECTED', 'POST_ONLY_WOULD_TAKE', '0', '0')
    write_order(P, t, now_s, '0', '0')
  elseif tif == 'FOK' and not fok_fillable(P, cfg, t, max_fills) then
    t.status = 'EXPIRED'
    emit_done(log, id, user, side, t.as, 'EXPIRED', 'FOK', '0', '0')
    write_order(P, t, now_s, '0', '0')
  else
    if crossing then
      more = match(P, cfg, log, levels, t, max_fills, now_s, batch)
    end
    if more and t.status ~= 'CANCELED' then
      -- continue in a further call (bounded work per call); not on the book yet
      t.status = t.filled > 0 and 'PARTIALLY_FILLED' or 'NEW'
      flush_levels(levels, log, P)
      filled_s, cost_s = fc_strings(t)
      write_order(P, t, now_s, filled_s, cost_s)
      call('HSET', okey, 'cont', t.aseq_s)
    else
      more = false
      filled_s, cost_s = finish(P, cfg, log, levels, t, now_s)
    end
  end
  local events = commit_log(log, P)
  return order_reply('new', t, events, more, filled_s, cost_s)
end

-- mkt_continue: resume matching of an order that stopped at max_fills. A buy that comes
-- to rest ends the call's events with `rested` (id, u, side, price, amount, filled).
-- KEYS[1] {m:X}:cfg
-- ARGV  order id, now_ms, max_fills ('' = default)
-- Returns as mkt_place (kind 'new'; kind 'replay' when nothing was left to do).
local function mkt_continue(keys, argv)
  bind()
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
  local cont = call('HGET', P .. 'o:' .. id, 'cont')
  if not cont then return order_reply('replay', t, '[]', false, t.fs, t.cs) end
  local cfg = load_cfg(keys[1], true)
  t.aseq_s = cont
  local now_s = argv[2]
  local log = new_log(cfg.seq, now_s)
  local levels = {}
  local more = match(P, cfg, log, levels, t, max_fills, now_s)
  local filled_s, cost_s
  if more and t.status ~= 'CANCELED' then
    t.status = t.filled > 0 and 'PARTIALLY_FILLED' or 'NEW'
    flush_levels(levels, log, P)
    filled_s, cost_s = fc_strings(t)
    write_order(P, t, now_s, filled_s, cost_s)
  else
    more = false
    call('HDEL', P .. 'o:' .. id, 'cont')
    filled_s, cost_s = finish(P, cfg, log, levels, t, now_s)
    if t.side == 'buy' and (t.status == 'NEW' or t.status == 'PARTIALLY_FILLED') then
      -- a buy that rests after a continued match: its trades here carry no limit price,
      -- so this says what it keeps holding (the settler releases the rest)
      emit(log, '"e":"rested","id":"' .. t.id .. '","u":"' .. t.u .. '","side":"buy","price":' ..
        t.ps .. ',"amount":' .. t.as .. ',"filled":' .. filled_s)
    end
  end
  local events = commit_log(log, P)
  return order_reply('new', t, events, more, filled_s, cost_s)
end

-- Remove a resting order from the book and emit its done event (no validation); its
-- level change goes to `levels` (nil: the caller applies it).
local function cancel_resting(P, log, levels, o, msg, now_s)
  local book = side_keys(P, o.side)
  call('ZREM', book, o.mem)
  if levels then level_delta(levels, o.side, o.price, o.ps, -(o.amount - o.filled)) end
  o.status = 'CANCELED'
  local key = P .. 'o:' .. o.id
  call('HSET', key, 'status', 'CANCELED', 'uts', now_s)
  call('PEXPIRE', key, TERMINAL_TTL_MS)
  emit_done(log, o.id, o.u, o.side, o.as, 'CANCELED', msg, o.fs, o.cs)
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
  bind()
  local P = prefix_of(keys[1])
  local id, user = argv[1], argv[2]
  local now = int_arg(argv[3], false)
  if not valid_id(id) or not valid_id(user) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  local cfg = load_cfg_small(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if cfg.status == 'HALT' then return fail('MARKET_NOT_TRADING', 'market is HALT') end
  local o = read_order(P, id)
  if not is_open(o) or o.u ~= user then return fail('UNKNOWN_ORDER', 'unknown order') end
  local log = new_log(cfg.seq, argv[3])
  cancel_resting(P, log, nil, o, 'USER', argv[3])
  flush_level(log, P, o.side, o.ps, -(o.amount - o.filled))
  local events = commit_log(log, P)
  return order_reply('new', o, events, false, o.fs, o.cs)
end

-- mkt_cancel_many: cancel those of the given orders that are open and belong to `user`
-- (the caller lists the user's open order ids from the account shard).
-- KEYS[1] {m:X}:cfg
-- ARGV  user, now_ms, order id...
-- Returns {events_json, canceled order id...}.
-- Errors (nothing written): INVALID_PARAM, UNKNOWN_MARKET, MARKET_NOT_TRADING (halted).
local function mkt_cancel_many(keys, argv)
  bind()
  local P = prefix_of(keys[1])
  local user = argv[1]
  local now = int_arg(argv[2], false)
  if not valid_id(user) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  for i = 3, #argv do
    if not valid_id(argv[i]) then return fail('INVALID_PARAM', 'bad order id') end
  end
  local cfg = load_cfg_small(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if cfg.status == 'HALT' then return fail('MARKET_NOT_TRADING', 'market is HALT') end
  local log = new_log(cfg.seq, argv[2])
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
  bind()
  local P = prefix_of(keys[1])
  local id, user = argv[1], argv[2]
  local new_amount = int_arg(argv[3], false)
  local now = int_arg(argv[4], false)
  if not valid_id(id) or not valid_id(user) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  if not new_amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  local cfg = load_cfg_small(keys[1])
  if not cfg then return fail('UNKNOWN_MARKET', 'unknown market') end
  if cfg.status == 'HALT' then return fail('MARKET_NOT_TRADING', 'market is HALT') end
  local o = read_order(P, id)
  if not is_open(o) or o.u ~= user then return fail('UNKNOWN_ORDER', 'unknown order') end
  if new_amount % cfg.lot ~= 0 then return fail('BAD_PRECISION', 'amount is not a multiple of the size increment') end
  if new_amount >= o.amount or new_amount <= o.filled then
    return fail('INVALID_PARAM', 'new amount must be below the amount and above the filled size')
  end
  local log = new_log(cfg.seq, argv[4])
  local levels = {}
  level_delta(levels, o.side, o.price, o.ps, new_amount - o.amount)
  o.amount = new_amount
  o.as = argv[3]
  call('HSET', P .. 'o:' .. id, 'amount', argv[3], 'uts', argv[4])
  emit(log, '"e":"reduced","id":"' .. o.id .. '","u":"' .. o.u .. '","side":"' .. o.side ..
    '","price":' .. o.ps .. ',"amount":' .. argv[3] .. ',"filled":' .. o.fs)
  flush_levels(levels, log, P)
  local events = commit_log(log, P)
  return order_reply('new', o, events, false, o.fs, o.cs)
end

-- mkt_tombstone: mark an order id that never reached the market as unusable.
-- KEYS[1] {m:X}:cfg
-- ARGV  order id, now_ms
-- Returns 1 if tombstoned (or already a tombstone), 0 if the order exists.
local function mkt_tombstone(keys, argv)
  bind()
  local P = prefix_of(keys[1])
  local id = argv[1]
  local now = int_arg(argv[2], false)
  if not valid_id(id) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  local st = call('HGET', P .. 'o:' .. id, 'status')
  if st == 'ABORTED' then return 1 end
  if st then return 0 end
  call('HSET', P .. 'o:' .. id, 'id', id, 'status', 'ABORTED', 'uts', fmt(now))
  call('PEXPIRE', P .. 'o:' .. id, TERMINAL_TTL_MS)
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
  bind()
  local P = prefix_of(keys[1])
  local now = int_arg(argv[1], false)
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local cur = call('HGETALL', keys[1])
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
  -- a new market's hash gets the fields every call reads or writes first (status,
  -- seq, tid, then tick..mult): a small hash is a listpack searched from its head
  local args = creating and {'status', c.status, 'seq', '0', 'tid', '0'} or {}
  local body = {}
  for _, f in ipairs({'tick', 'lot', 'min', 'maxn', 'mult', 'mfee', 'tfee', 'base', 'quote', 'bscale', 'status'}) do
    if not creating or f ~= 'status' then
      args[#args + 1] = f
      args[#args + 1] = c[f]
    end
  end
  for _, f in ipairs({'base', 'quote', 'bscale', 'tick', 'lot', 'min', 'maxn', 'mult', 'mfee', 'tfee', 'status'}) do
    if f == 'base' or f == 'quote' or f == 'status' then
      body[#body + 1] = string.format('"%s":"%s"', f, c[f])
    else
      body[#body + 1] = string.format('"%s":%s', f, c[f])
    end
  end
  call('HSET', keys[1], unpack(args))
  local cfg = load_cfg(keys[1])
  local log = new_log(cfg.seq, argv[1])
  emit(log, '"e":"market",' .. table_concat(body, ','))
  return commit_log(log, P)
end

-- mkt_depth: L2 depth, read atomically with the market seq.
-- KEYS[1] {m:X}:cfg
-- ARGV  levels per side
-- Returns {seq, {bid price, size, ...}, {ask price, size, ...}} (best first), or an
-- UNKNOWN_MARKET error.
local function mkt_depth(keys, argv)
  bind()
  local P = prefix_of(keys[1])
  local n = int_arg(argv[1], false)
  if not n then return fail('INVALID_PARAM', 'bad depth') end
  local seq = call('HGET', keys[1], 'seq')
  if not seq then return fail('UNKNOWN_MARKET', 'unknown market') end
  local out = {seq}
  for _, side in ipairs({'buy', 'sell'}) do
    local _, lv, dp = side_keys(P, side)
    local prices = call('ZRANGE', lv, 0, n - 1)
    local flat = {}
    if #prices > 0 then
      local fields = {}
      for i = 1, #prices do fields[i] = dp .. prices[i] end
      local sizes = call('HMGET', P .. 'd', unpack(fields))
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

end
