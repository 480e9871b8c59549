-- One caller per period wins the right to re-read the database.
-- ARGV: max age (ms). Returns 1 when claimed (or the item is unknown).
local at = redis.call('HGET', key, 'at')
if not at then
  return 1
end
local now = now_ms()
if now - tonumber(at) > tonumber(ARGV[1]) then
  redis.call('HSET', key, 'at', string.format('%d', now))
  return 1
end
return 0
