-- Applies an observation unless it is older than the one held; creates the
-- item when missing.
-- ARGV: stock, version, key TTL (ms)
local held = redis.call('HGET', key, 'version')
if held and tonumber(held) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', key, 'stock', ARGV[1], 'version', ARGV[2], 'at', string.format('%d', now_ms()))
redis.call('PEXPIRE', key, ARGV[3])
return 1
