-- GCRA on one key holding the theoretical arrival time (TAT, integer µs).
-- The same arithmetic as crate::gcra::Gcra::decide.
-- KEYS[1]  the limit's key for one address
-- ARGV[1]  emission interval (µs)
-- ARGV[2]  tolerance (µs)
-- ARGV[3]  '1' counts the request when it passes, '0' only peeks
-- ARGV[4]  now (µs); empty: Redis TIME (one clock for every process)
-- Returns {1, 0} when it passes, {0, retry_after_us} when refused.
-- Redis < 5 refuses writes after TIME unless effects are replicated;
-- later versions always do so and keep this call as a no-op.
if redis.replicate_commands then
  redis.replicate_commands()
end
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
if ARGV[3] == '1' then
  local next_tat = tat + interval
  -- The key matters only until its TAT: then it equals a fresh one.
  local ttl_ms = math.max(1, math.ceil((next_tat - now) / 1000))
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
end
return {1, 0}
