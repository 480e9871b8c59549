-- Takes units out of flight (newest bucket first) and, when given, applies
-- an observation unless it is older than the one held. A missing item is
-- left missing: the next admission answers Unknown and reloads it.
-- ARGV: units, bucket width (ms), live buckets, key TTL (ms), [stock, version]
if redis.call('EXISTS', key) == 0 then
  return 0
end
local now = now_ms()
local now_index = math.floor(now / tonumber(ARGV[2]))
local buckets = live_buckets(redis.call('HGETALL', key), tonumber(ARGV[3]), now_index)
local left = tonumber(ARGV[1])
for i = #buckets, 1, -1 do
  if left <= 0 then
    break
  end
  local index, units = buckets[i][1], buckets[i][2]
  local take = math.min(left, units)
  left = left - take
  if units - take > 0 then
    redis.call('HSET', key, bucket_name(index), string.format('%d', units - take))
  else
    redis.call('HDEL', key, bucket_name(index))
  end
end
if ARGV[5] ~= nil then
  local held = redis.call('HGET', key, 'version')
  if (not held) or tonumber(held) <= tonumber(ARGV[6]) then
    redis.call('HSET', key, 'stock', ARGV[5], 'version', ARGV[6], 'at', string.format('%d', now))
  end
end
redis.call('PEXPIRE', key, ARGV[4])
return 1
