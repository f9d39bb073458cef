-- The prelude of every Redis controls script, after the constants rendered from the Python ones
-- (stores.controls.redis.scripts): the request (a JSON object in ARGV[2], with None fields left
-- out so they read as nil), keys under the prefix (ARGV[1]), the store's clock and number formats.
-- Numbers are written with %d (integers) and %.17g (times: it round-trips a double), never with
-- Lua's lossy tostring.

local PREFIX = ARGV[1]
local req = cjson.decode(ARGV[2])

local function key(...)
  return PREFIX .. ':' .. table.concat({...}, ':')
end

local TIME = redis.call('TIME')
local NOW = tonumber(TIME[1]) + tonumber(TIME[2]) / 1000000

-- A double as a string that reads back as the same double.
local function float(x)
  return string.format('%.17g', x)
end
local NOW_S = float(NOW)

local function int(x)
  return string.format('%d', x)
end

-- a // b for a >= 0, exact (math.floor(a / b) can round across an integer).
local function idiv(a, b)
  return (a - math.fmod(a, b)) / b
end

-- Python's truth of an optional string: nil and '' are false.
local function truthy(s)
  return s ~= nil and s ~= false and s ~= ''
end

-- Give k a TTL of at least `seconds` (never shorten one).
local function keep_at_least(k, seconds)
  local want = math.ceil(seconds)
  local ttl = redis.call('TTL', k)
  if ttl >= 0 and ttl >= want then return end
  redis.call('EXPIRE', k, want)
end
