-- hftx function library: shared helpers (Lua 5.1, redis.call, cjson only).
-- All lua/*.lua files are concatenated into one library named "hftx" by
-- engine/functions.py; this file comes first.
--
-- Numbers: every quantity is an integer below 2^53 (MAX_INT). Never tostring()
-- a number (it prints 1e+15): fmt() formats integers exactly with "%d" (a C long
-- long). Number <-> string conversions are the main cost of a call, so hot paths
-- keep the strings they received (ARGV, replies) and reuse them.
-- Errors: functions fail with redis.error_reply("<CODE> <message>") BEFORE their
-- first write, CODE being one of PROTOCOL.md's error codes.

local MAX_INT = 9007199254740991

local function fmt(n)
  if n == 0 then return '0' end
  return string.format('%d', n)
end

local function fail(code, msg)
  return redis.error_reply(code .. ' ' .. msg)
end

-- Parse a strictly positive/non-negative integer argument in canonical form (no
-- sign, no leading zero, so the string itself can be reused in JSON); nil if invalid.
-- Verdicts on recent strings are memoized (string -> number, or false if not a
-- canonical integer below 2^53): prices, sizes and timestamps repeat, and every C
-- function call costs. A pure memo, bounded, no state of its own.
local INT_MEMO, int_memo_n = {}, 0
local function int_arg(s, allow_zero)
  local n = INT_MEMO[s]
  if n == nil then
    -- more than 16 characters cannot be an integer below 2^53 (and is not memoized)
    if type(s) ~= 'string' or #s > 16 then return nil end
    n = false
    if string.find(s, '^%d+$') and not (#s > 1 and string.byte(s, 1) == 48) then
      local v = tonumber(s)
      if v <= MAX_INT then n = v end
    end
    if int_memo_n >= 1024 then INT_MEMO, int_memo_n = {}, 0 end
    INT_MEMO[s] = n
    int_memo_n = int_memo_n + 1
  end
  if not n then return nil end
  if n == 0 and not allow_zero then return nil end
  return n
end

-- ceil(x * bps / 10000) without overflowing 2^53 (x < 2^53, 0 <= bps <= 10000).
local function fee_of(x, bps)
  if bps == 0 then return 0 end
  local hi = math.floor(x / 10000) * bps
  local lo = (x % 10000) * bps
  return hi + math.floor((lo + 9999) / 10000)
end

-- An id we can embed in JSON and keys without escaping.
local function valid_id(s)
  return type(s) == 'string' and #s >= 1 and #s <= 36 and string.find(s, '^[A-Za-z0-9._:-]+$') ~= nil
end
