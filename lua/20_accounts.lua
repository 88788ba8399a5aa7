-- hftx function library: the account shard (balances, holds, wallet, settlement).
--
-- Keys of one account carry the hash tag {u:<USER>} (docs/internals.md). Every
-- acct_* function except acct_lease / acct_position / acct_zrem_if takes the same five KEYS:
--   KEYS[1] {u:U}:bal    hash    <ASSET>:a available, <ASSET>:h held, <ASSET>:e escrow
--   KEYS[2] {u:U}:holds  hash    order id -> market|asset|amount|ts|cid
--   KEYS[3] {u:U}:cur    hash    source stream key -> last applied position
--   KEYS[4] {u:U}:ev     stream  one entry per call: field e = JSON array of ledger events
--   KEYS[5] {u:U}:ops    hash    idempotency records: d:<deposit id>, w:<withdrawal id>,
--                                t:<transfer id>
-- and derives {u:U}:c:<cid> (client order id -> market|order id, 24 h) from the prefix.
-- Balances only change through HINCRBY (int64, exact); every function validates
-- everything before its first write.

local CID_TTL_MS = 86400000

local function acct_prefix(bal_key)
  return string.sub(bal_key, 1, #bal_key - 3)
end

local function acct_user(P)
  return string.match(P, '^{u:(.+)}:$')
end

local function valid_asset(s)
  return type(s) == 'string' and #s >= 2 and #s <= 10 and string.find(s, '^[A-Z0-9]+$') ~= nil
end

local function valid_market(s)
  return type(s) == 'string' and #s <= 21 and string.find(s, '^[A-Z0-9]+%-[A-Z0-9]+$') ~= nil
end

local function valid_address(s)
  return type(s) == 'string' and #s >= 1 and #s <= 100 and string.find(s, '^[A-Za-z0-9]+$') ~= nil
end

local function split(s)
  local out, start = {}, 1
  while true do
    local i = string.find(s, '|', start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end

local function num(v)
  if v == false or v == nil then return 0 end
  return tonumber(v)
end

-- Stream positions: a market seq ("123") or a stream entry id ("1700000000000-3").
local function parse_pos(s)
  if type(s) ~= 'string' then return nil end
  local a, b = string.match(s, '^(%d+)%-(%d+)$')
  if not a then
    a = string.match(s, '^(%d+)$')
    b = '0'
  end
  if not a or #a > 16 or #b > 16 then return nil end
  return {tonumber(a), tonumber(b)}
end

local function pos_after(p, q)
  return p[1] > q[1] or (p[1] == q[1] and p[2] > q[2])
end

-- One XADD per call with all ledger events of the call; returns the entry id.
local function append_ledger(ev_key, items)
  if #items == 0 then return '' end
  return redis.call('XADD', ev_key, '*', 'e', '[' .. table.concat(items, ',') .. ']')
end

local function balance_row(bal_key, asset)
  local v = redis.call('HMGET', bal_key, asset .. ':a', asset .. ':h', asset .. ':e')
  return {asset, v[1] or '0', v[2] or '0', v[3] or '0'}
end

local function parse_hold(s)
  local f = split(s)
  return {market = f[1], asset = f[2], amount = tonumber(f[3]), ts = f[4], cid = f[5] or ''}
end

local function hold_string(h)
  return string.format('%s|%s|%s|%s|%s', h.market, h.asset, fmt(h.amount), h.ts, h.cid)
end

-- acct_hold: reserve funds for an order before it is placed (idempotent by order id).
-- KEYS  bal holds cur ev ops (see top)
-- ARGV  order_id, market, asset, amount, now_ms, client_order_id ('' if none)
-- Returns {'new', amount held}
--         {'replay', amount still held}  the order id already holds (nothing written)
--         {'duplicate', 'market|order_id'}  client_order_id used by another order in
--                                           the last 24 h (nothing written)
-- Errors (nothing written): INVALID_PARAM, INSUFFICIENT_FUNDS.
local function acct_hold(keys, argv)
  local P = acct_prefix(keys[1])
  local oid, market, asset, cid = argv[1], argv[2], argv[3], argv[6] or ''
  local amount = int_arg(argv[4], false)
  local now = int_arg(argv[5], false)
  if not valid_id(oid) then return fail('INVALID_PARAM', 'bad order id') end
  if not valid_market(market) then return fail('INVALID_PARAM', 'bad market') end
  if not valid_asset(asset) then return fail('INVALID_PARAM', 'bad asset') end
  if not amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  if cid ~= '' and not valid_id(cid) then return fail('INVALID_PARAM', 'bad client_order_id') end
  local existing = redis.call('HGET', keys[2], oid)
  if existing then return {'replay', fmt(parse_hold(existing).amount)} end
  if cid ~= '' then
    local prev = redis.call('GET', P .. 'c:' .. cid)
    if prev then
      if prev == market .. '|' .. oid then return {'replay', '0'} end
      return {'duplicate', prev}
    end
  end
  local avail = num(redis.call('HGET', keys[1], asset .. ':a'))
  if avail < amount then return fail('INSUFFICIENT_FUNDS', 'insufficient ' .. asset) end
  -- validated: writes start here
  redis.call('HINCRBY', keys[1], asset .. ':a', -amount)
  redis.call('HINCRBY', keys[1], asset .. ':h', amount)
  redis.call('HSET', keys[2], oid, hold_string({market = market, asset = asset, amount = amount,
    ts = fmt(now), cid = cid}))
  if cid ~= '' then redis.call('SET', P .. 'c:' .. cid, market .. '|' .. oid, 'PX', CID_TTL_MS) end
  -- cid only when given (restore rebuilds the client order id index from it)
  local tail = cid ~= '' and string.format(',"cid":"%s"}', cid) or '}'
  append_ledger(keys[4], {string.format(
    '{"e":"hold","ts":%s,"id":"%s","market":"%s","asset":"%s","amount":%s',
    fmt(now), oid, market, asset, fmt(amount)) .. tail})
  return {'new', fmt(amount)}
end

-- acct_release: abort the hold of an order that never reached the market
-- (idempotent: no hold, nothing to do). Frees the order's client_order_id.
-- KEYS  bal holds cur ev ops
-- ARGV  order_id, now_ms
-- Returns the amount released ('0' when there was no hold).
-- Errors (nothing written): INVALID_PARAM.
local function acct_release(keys, argv)
  local P = acct_prefix(keys[1])
  local oid = argv[1]
  local now = int_arg(argv[2], false)
  if not valid_id(oid) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  local rec = redis.call('HGET', keys[2], oid)
  if not rec then return '0' end
  local h = parse_hold(rec)
  if h.amount > 0 then
    redis.call('HINCRBY', keys[1], h.asset .. ':h', -h.amount)
    redis.call('HINCRBY', keys[1], h.asset .. ':a', h.amount)
  end
  redis.call('HDEL', keys[2], oid)
  if h.cid ~= '' then
    local ckey = P .. 'c:' .. h.cid
    if redis.call('GET', ckey) == h.market .. '|' .. oid then redis.call('DEL', ckey) end
  end
  append_ledger(keys[4], {string.format(
    '{"e":"release","ts":%s,"id":"%s","market":"%s","asset":"%s","amount":%s,"reason":"abort"}',
    fmt(now), oid, h.market, h.asset, fmt(h.amount))})
  return fmt(h.amount)
end

-- In-memory view of one account during a settle/credit call: changes are checked
-- first and written at the end, so a refused call writes nothing.
local function new_view(keys)
  return {keys = keys, bal = {}, delta = {}, fields = {}, holds = {}, hold_ids = {}, assets = {},
    asset_list = {}, items = {}}
end

local function view_bal(v, field)
  local x = v.bal[field]
  if x == nil then
    x = num(redis.call('HGET', v.keys[1], field))
    v.bal[field] = x
  end
  return x
end

local function view_add(v, asset, kind, d)
  local field = asset .. ':' .. kind
  v.bal[field] = view_bal(v, field) + d
  if v.delta[field] == nil then
    v.delta[field] = 0
    v.fields[#v.fields + 1] = field
  end
  v.delta[field] = v.delta[field] + d
  if not v.assets[asset] then
    v.assets[asset] = true
    v.asset_list[#v.asset_list + 1] = asset
  end
end

local function view_hold(v, oid)
  local h = v.holds[oid]
  if h == nil then
    local rec = redis.call('HGET', v.keys[2], oid)
    h = rec and parse_hold(rec) or false
    v.holds[oid] = h
    v.hold_ids[#v.hold_ids + 1] = oid
  end
  return h
end

-- Release what `h` holds above `keep`; returns the amount released.
local function view_release(v, oid, h, keep, reason, ts)
  local rel = h.amount - keep
  if rel <= 0 then return 0 end
  view_add(v, h.asset, 'h', -rel)
  view_add(v, h.asset, 'a', rel)
  h.amount = keep
  v.items[#v.items + 1] = string.format(
    '{"e":"release","ts":%s,"id":"%s","market":"%s","asset":"%s","amount":%s,"reason":"%s"}',
    ts, oid, h.market, h.asset, fmt(rel), reason)
  return rel
end

local function op_int(x, allow_zero)
  if type(x) ~= 'number' or x < 0 or x > MAX_INT or x ~= math.floor(x) then return nil end
  if x == 0 and not allow_zero then return nil end
  return x
end

-- Apply one settlement op to the view; returns an error string or nil.
local function apply_op(v, op, src_market, src_payer)
  local kind, ts = op[1], op_int(op[3], true)
  if not ts then return 'bad op timestamp' end
  ts = fmt(ts)
  if kind == 't' then
    -- {'t', pos, ts, order_id, trade_id, liq, held_asset, paid, recv_asset, got, fee}
    local oid, tid, liq = op[4], op_int(op[5], false), op[6]
    local hasset, paid, rasset, got, fee = op[7], op_int(op[8], false), op[9], op_int(op[10], false),
      op_int(op[11], true)
    if not valid_id(oid) or not tid or (liq ~= 'maker' and liq ~= 'taker') or not valid_asset(hasset)
      or not paid or not valid_asset(rasset) or not got or not fee or fee > got then
      return 'bad trade op'
    end
    local h = view_hold(v, oid)
    if not h or h.asset ~= hasset or h.amount < paid then return 'trade exceeds the hold of ' .. oid end
    h.amount = h.amount - paid
    view_add(v, hasset, 'h', -paid)
    view_add(v, rasset, 'a', got - fee)
    v.items[#v.items + 1] = string.format(
      '{"e":"fill","ts":%s,"market":"%s","id":"%s","tid":%s,"liq":"%s","out":"%s","paid":%s,"in":"%s","got":%s,"fee":%s}',
      ts, src_market, oid, fmt(tid), liq, hasset, fmt(paid), rasset, fmt(got), fmt(fee))
  elseif kind == 'f' then
    -- {'f', pos, ts, trade_id, asset, amount}
    local tid, asset, amount = op_int(op[4], false), op[5], op_int(op[6], false)
    if not tid or not valid_asset(asset) or not amount then return 'bad fee op' end
    view_add(v, asset, 'a', amount)
    v.items[#v.items + 1] = string.format(
      '{"e":"fee","ts":%s,"market":"%s","tid":%s,"asset":"%s","amount":%s}',
      ts, src_market, fmt(tid), asset, fmt(amount))
  elseif kind == 'd' or kind == 'r' then
    -- {'d', pos, ts, order_id}: release what remains, drop the hold record
    -- {'r', pos, ts, order_id, keep}: release the hold down to `keep`
    local oid = op[4]
    local keep = 0
    if kind == 'r' then keep = op_int(op[5], true) end
    if not valid_id(oid) or not keep then return 'bad done/reduced op' end
    local h = view_hold(v, oid)
    if h then
      view_release(v, oid, h, keep, kind == 'd' and 'done' or 'reduced', ts)
      if kind == 'd' then h.deleted = true end
    end
  elseif kind == 'c' then
    -- {'c', pos, ts, payer, transfer_id, asset, amount}
    local payer, tid, asset, amount = op[4], op[5], op[6], op_int(op[7], false)
    if payer ~= src_payer or not valid_id(tid) or not valid_asset(asset) or not amount then
      return 'bad credit op'
    end
    view_add(v, asset, 'a', amount)
    v.items[#v.items + 1] = string.format(
      '{"e":"transfer_in","ts":%s,"id":"%s","from":"%s","asset":"%s","amount":%s}',
      ts, tid, payer, asset, fmt(amount))
  else
    return 'unknown op ' .. tostring(kind)
  end
  return nil
end

-- Shared body of acct_settle and acct_credit: apply the ops whose position is
-- after the account's cursor for `src`, in order, exactly once.
local function apply_ops(keys, argv, allowed, payer)
  local src, market = argv[1], argv[2]
  if type(src) ~= 'string' or #src == 0 or #src > 80 then return fail('INVALID_PARAM', 'bad source') end
  local ok, ops = pcall(cjson.decode, argv[3] or '')
  if not ok or type(ops) ~= 'table' then return fail('INVALID_PARAM', 'ops must be a JSON array') end
  local cur_s = redis.call('HGET', keys[3], src)
  local cur = cur_s and parse_pos(cur_s) or {-1, -1}
  local prev, last_s = {-1, -1}, nil
  local v = new_view(keys)
  local applied = 0
  for i = 1, #ops do
    local op = ops[i]
    if type(op) ~= 'table' or not allowed[op[1]] then return fail('INVALID_PARAM', 'bad op ' .. i) end
    local p = parse_pos(op[2])
    if not p then return fail('INVALID_PARAM', 'bad op position') end
    if pos_after(prev, p) then return fail('INVALID_PARAM', 'ops out of order') end
    prev = p
    if pos_after(p, cur) then
      local err = apply_op(v, op, market, payer)
      if err then return fail('INTERNAL', err) end
      applied = applied + 1
      last_s = op[2]
    end
  end
  for _, field in ipairs(v.fields) do
    if v.bal[field] < 0 then return fail('INTERNAL', 'settlement would make ' .. field .. ' negative') end
  end
  if applied == 0 then return {0} end
  -- validated: writes start here
  for _, field in ipairs(v.fields) do
    if v.delta[field] ~= 0 then redis.call('HINCRBY', keys[1], field, v.delta[field]) end
  end
  for _, oid in ipairs(v.hold_ids) do
    local h = v.holds[oid]
    if h then
      if h.deleted then
        redis.call('HDEL', keys[2], oid)
      else
        redis.call('HSET', keys[2], oid, hold_string(h))
      end
    end
  end
  redis.call('HSET', keys[3], src, last_s)
  append_ledger(keys[4], v.items)
  local out = {applied}
  for _, asset in ipairs(v.asset_list) do out[#out + 1] = balance_row(keys[1], asset) end
  return out
end

-- acct_settle: apply this account's part of market stream entries, exactly once.
-- KEYS  bal holds cur ev ops
-- ARGV  source stream key ({m:X}:ev), market id, ops JSON: an array of ops in
--       stream order, each an array starting with kind, position (the entry's last
--       seq `l`, a decimal string) and ts:
--         {'t', l, ts, order_id, trade_id, 'maker'|'taker', held_asset, paid, recv_asset, got, fee}
--             fill: hold and held -= paid; available recv_asset += got - fee
--         {'f', l, ts, trade_id, asset, amount}      fee account: available += amount
--         {'d', l, ts, order_id}                     done: release the rest of the hold
--         {'r', l, ts, order_id, keep}               reduced: release the hold down to keep
--       Ops at or below {u:U}:cur[source] are skipped (already applied).
-- Returns {applied op count, {asset, available, held, escrow}...} for the touched
--   assets after the call ({0} when everything was already applied).
-- Errors (nothing written): INVALID_PARAM (malformed), INTERNAL (an op would take
--   more than a hold holds or make a balance negative).
local SETTLE_OPS = {t = true, f = true, d = true, r = true}
local function acct_settle(keys, argv)
  if not valid_market(argv[2]) or argv[1] ~= '{m:' .. argv[2] .. '}:ev' then
    return fail('INVALID_PARAM', 'bad market or source')
  end
  return apply_ops(keys, argv, SETTLE_OPS)
end

-- acct_credit: credit incoming transfers from a payer's outbox, exactly once.
-- KEYS  bal holds cur ev ops (of the payee)
-- ARGV  source stream key ({u:PAYER}:ev), '' , ops JSON: array of
--         {'c', entry id, ts, payer, transfer_id, asset, amount}
--       in stream order; entries at or below {u:U}:cur[source] are skipped.
-- Returns as acct_settle.
-- Errors (nothing written): INVALID_PARAM (malformed, source is the payee itself),
--   INTERNAL (an op whose payer is not the source's owner).
local CREDIT_OPS = {c = true}
local function acct_credit(keys, argv)
  local payer = string.match(argv[1] or '', '^{u:(.+)}:ev$')
  if not payer or payer == acct_user(acct_prefix(keys[1])) then
    return fail('INVALID_PARAM', 'bad source')
  end
  return apply_ops(keys, argv, CREDIT_OPS, payer)
end

-- acct_deposit: credit an on-chain deposit (idempotent by deposit id).
-- KEYS  bal holds cur ev ops
-- ARGV  deposit_id, asset, amount, now_ms, address ('' if unknown; kept in the ledger)
-- Returns {'new'|'replay', available after}.
-- Errors (nothing written): INVALID_PARAM (also: id reused with other asset/amount).
local function acct_deposit(keys, argv)
  local id, asset = argv[1], argv[2]
  local amount = int_arg(argv[3], false)
  local now = int_arg(argv[4], false)
  if not valid_id(id) then return fail('INVALID_PARAM', 'bad deposit id') end
  if not valid_asset(asset) then return fail('INVALID_PARAM', 'bad asset') end
  if not amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local address = argv[5] or ''
  if address ~= '' and not valid_address(address) then return fail('INVALID_PARAM', 'bad address') end
  local rec = redis.call('HGET', keys[5], 'd:' .. id)
  if rec then
    local f = split(rec)
    if f[1] ~= asset or tonumber(f[2]) ~= amount then
      return fail('INVALID_PARAM', 'deposit id already used with another asset or amount')
    end
    return {'replay', fmt(num(redis.call('HGET', keys[1], asset .. ':a')))}
  end
  local after = redis.call('HINCRBY', keys[1], asset .. ':a', amount)
  redis.call('HSET', keys[5], 'd:' .. id, string.format('%s|%s|%s', asset, fmt(amount), fmt(now)))
  append_ledger(keys[4], {string.format(
    '{"e":"deposit","ts":%s,"id":"%s","asset":"%s","amount":%s,"address":"%s"}',
    fmt(now), id, asset, fmt(amount), address)})
  return {'new', fmt(after)}
end

-- acct_withdraw_request: hold an amount for a withdrawal (idempotent by id).
-- KEYS  bal holds cur ev ops
-- ARGV  withdrawal_id, asset, amount, address, now_ms
-- Returns {'new'|'replay', state} with state requested|done|rejected.
-- Errors (nothing written): INVALID_PARAM (also: id reused with other parameters),
--   INSUFFICIENT_FUNDS.
local function acct_withdraw_request(keys, argv)
  local id, asset, address = argv[1], argv[2], argv[4]
  local amount = int_arg(argv[3], false)
  local now = int_arg(argv[5], false)
  if not valid_id(id) then return fail('INVALID_PARAM', 'bad withdrawal id') end
  if not valid_asset(asset) then return fail('INVALID_PARAM', 'bad asset') end
  if not amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not valid_address(address) then return fail('INVALID_PARAM', 'bad address') end
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local rec = redis.call('HGET', keys[5], 'w:' .. id)
  if rec then
    local f = split(rec)
    if f[2] ~= asset or tonumber(f[3]) ~= amount or f[4] ~= address then
      return fail('INVALID_PARAM', 'withdrawal id already used with other parameters')
    end
    return {'replay', f[1]}
  end
  if num(redis.call('HGET', keys[1], asset .. ':a')) < amount then
    return fail('INSUFFICIENT_FUNDS', 'insufficient ' .. asset)
  end
  redis.call('HINCRBY', keys[1], asset .. ':a', -amount)
  redis.call('HINCRBY', keys[1], asset .. ':h', amount)
  redis.call('HSET', keys[5], 'w:' .. id,
    string.format('requested|%s|%s|%s|%s', asset, fmt(amount), address, fmt(now)))
  append_ledger(keys[4], {string.format(
    '{"e":"withdraw_req","ts":%s,"id":"%s","asset":"%s","amount":%s,"address":"%s"}',
    fmt(now), id, asset, fmt(amount), address)})
  return {'new', 'requested'}
end

-- Shared body of withdraw_complete / withdraw_reject.
local function withdraw_finish(keys, argv, state, kind)
  local id = argv[1]
  local now = int_arg(argv[2], false)
  if not valid_id(id) or not now then return fail('INVALID_PARAM', 'bad arguments') end
  local rec = redis.call('HGET', keys[5], 'w:' .. id)
  if not rec then return fail('INVALID_PARAM', 'unknown withdrawal') end
  local f = split(rec)
  if f[1] == state then return {'replay', state} end
  if f[1] ~= 'requested' then return fail('INVALID_PARAM', 'withdrawal is ' .. f[1]) end
  local asset, amount = f[2], tonumber(f[3])
  redis.call('HINCRBY', keys[1], asset .. ':h', -amount)
  if state == 'rejected' then redis.call('HINCRBY', keys[1], asset .. ':a', amount) end
  f[1] = state
  redis.call('HSET', keys[5], 'w:' .. id, table.concat(f, '|'))
  append_ledger(keys[4], {string.format('{"e":"%s","ts":%s,"id":"%s","asset":"%s","amount":%s}',
    kind, fmt(now), id, asset, fmt(amount))})
  return {'new', state}
end

-- acct_withdraw_complete: the withdrawal was sent; the held amount leaves the exchange.
-- KEYS  bal holds cur ev ops
-- ARGV  withdrawal_id, now_ms
-- Returns {'new'|'replay', 'done'}.
-- Errors (nothing written): INVALID_PARAM (unknown, or already rejected).
local function acct_withdraw_complete(keys, argv)
  return withdraw_finish(keys, argv, 'done', 'withdraw_done')
end

-- acct_withdraw_reject: the withdrawal is refused; the amount goes back to available.
-- KEYS  bal holds cur ev ops
-- ARGV  withdrawal_id, now_ms
-- Returns {'new'|'replay', 'rejected'}.
-- Errors (nothing written): INVALID_PARAM (unknown, or already completed).
local function acct_withdraw_reject(keys, argv)
  return withdraw_finish(keys, argv, 'rejected', 'withdraw_rejected')
end

-- acct_transfer_out: debit the payer and append the transfer to the payer's stream
-- (the outbox the settler credits the payee from). Idempotent by transfer id.
-- KEYS  bal holds cur ev ops (of the payer)
-- ARGV  transfer_id, asset, amount, payee user id, now_ms
-- Returns {'new'|'replay', outbox entry id}.
-- Errors (nothing written): INVALID_PARAM (also: payee is the payer, id reused with
--   other parameters), INSUFFICIENT_FUNDS.
local function acct_transfer_out(keys, argv)
  local P = acct_prefix(keys[1])
  local id, asset, payee = argv[1], argv[2], argv[4]
  local amount = int_arg(argv[3], false)
  local now = int_arg(argv[5], false)
  if not valid_id(id) then return fail('INVALID_PARAM', 'bad transfer id') end
  if not valid_asset(asset) then return fail('INVALID_PARAM', 'bad asset') end
  if not amount then return fail('INVALID_PARAM', 'amount must be a positive integer') end
  if not valid_id(payee) then return fail('INVALID_PARAM', 'bad payee') end
  if not now then return fail('INVALID_PARAM', 'bad timestamp') end
  local rec = redis.call('HGET', keys[5], 't:' .. id)
  if rec then
    local f = split(rec)
    if f[1] ~= asset or tonumber(f[2]) ~= amount or f[3] ~= payee then
      return fail('INVALID_PARAM', 'transfer id already used with other parameters')
    end
    return {'replay', f[4]}
  end
  if payee == acct_user(P) then return fail('INVALID_PARAM', 'cannot transfer to your own address') end
  if num(redis.call('HGET', keys[1], asset .. ':a')) < amount then
    return fail('INSUFFICIENT_FUNDS', 'insufficient ' .. asset)
  end
  redis.call('HINCRBY', keys[1], asset .. ':a', -amount)
  local entry = append_ledger(keys[4], {string.format(
    '{"e":"transfer_out","ts":%s,"id":"%s","to":"%s","asset":"%s","amount":%s}',
    fmt(now), id, payee, asset, fmt(amount))})
  redis.call('HSET', keys[5], 't:' .. id,
    string.format('%s|%s|%s|%s|%s', asset, fmt(amount), payee, entry, fmt(now)))
  return {'new', entry}
end

-- acct_balances: all balances of an account.
-- KEYS  bal
-- Returns the flat HGETALL of {u:U}:bal (field <ASSET>:a|h|e, integer value).
local function acct_balances(keys, argv)
  return redis.call('HGETALL', keys[1])
end

-- acct_position: move a reader's saved stream position forward, never back (a
-- settler whose lease lapsed may still write an older one; readers rely on it).
-- KEYS[1] position key (in the hash tag of the stream it is a position of)
-- ARGV  position (entry id "ms-seq")
-- Returns 1 when the key now holds that position, 0 when it held a later one.
local function acct_position(keys, argv)
  local p = parse_pos(argv[1])
  if not p then return fail('INVALID_PARAM', 'bad position') end
  local cur = parse_pos(redis.call('GET', keys[1]))
  if cur and pos_after(cur, p) then return 0 end
  redis.call('SET', keys[1], argv[1])
  return 1
end

-- acct_lease: take, renew or give up a lease (one settler instance per stream).
-- KEYS[1] lease key (in the hash tag of the stream it guards)
-- ARGV  instance id, ttl_ms ('0' = give up)
-- Returns 1 when `instance` holds the lease after the call, else 0.
local function acct_lease(keys, argv)
  local me = argv[1]
  local ttl = int_arg(argv[2], true)
  if type(me) ~= 'string' or #me == 0 or not ttl then return fail('INVALID_PARAM', 'bad arguments') end
  local holder = redis.call('GET', keys[1])
  if ttl == 0 then
    if holder == me then redis.call('DEL', keys[1]) end
    return 0
  end
  if holder == me then
    redis.call('PEXPIRE', keys[1], ttl)
    return 1
  end
  if holder then return 0 end
  redis.call('SET', keys[1], me, 'PX', ttl)
  return 1
end

-- acct_zrem_if: remove a member from an index sorted set only if its score is
-- unchanged (an index entry bumped since it was read stays).
-- KEYS[1] sorted set
-- ARGV  member, score read before
-- Returns 1 if removed, else 0.
local function acct_zrem_if(keys, argv)
  local score = redis.call('ZSCORE', keys[1], argv[1])
  if score and tonumber(score) == tonumber(argv[2]) then
    redis.call('ZREM', keys[1], argv[1])
    return 1
  end
  return 0
end

redis.register_function('acct_hold', acct_hold)
redis.register_function('acct_release', acct_release)
redis.register_function('acct_settle', acct_settle)
redis.register_function('acct_credit', acct_credit)
redis.register_function('acct_deposit', acct_deposit)
redis.register_function('acct_withdraw_request', acct_withdraw_request)
redis.register_function('acct_withdraw_complete', acct_withdraw_complete)
redis.register_function('acct_withdraw_reject', acct_withdraw_reject)
redis.register_function('acct_transfer_out', acct_transfer_out)
redis.register_function{function_name = 'acct_balances', callback = acct_balances, flags = {'no-writes'}}
redis.register_function('acct_lease', acct_lease)
redis.register_function('acct_position', acct_position)
redis.register_function('acct_zrem_if', acct_zrem_if)
