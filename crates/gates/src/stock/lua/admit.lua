-- ARGV: quantity, bucket width (ms), live buckets, key TTL (ms)
-- Returns {1, stock} admitted, {0, stock} sold out, {-1, 0} unknown item.
local quantity = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local fields = redis.call('HGETALL', key)
local stock = nil
for i = 1, #fields, 2 do
  if fields[i] == 'stock' then
    stock = tonumber(fields[i + 1])
  end
end
if stock == nil then
  return {-1, 0}
end
local now_index = math.floor(now_ms() / width)
local in_flight = 0
for _, bucket in ipairs(live_buckets(fields, tonumber(ARGV[3]), now_index)) do
  in_flight = in_flight + bucket[2]
end
if stock - in_flight >= quantity then
  if quantity > 0 then
    redis.call('HINCRBY', key, bucket_name(now_index), quantity)
  end
  redis.call('PEXPIRE', key, ARGV[4])
  return {1, stock}
end
return {0, stock}
