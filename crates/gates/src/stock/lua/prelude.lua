-- Shared by the stock gate's scripts. KEYS[1] is one item's hash:
--   stock, version  the database's latest word (integers)
--   at              when it was observed or a refresh claimed (ms, Redis clock)
--   b:{index}       units admitted in that time bucket, not yet answered
-- Redis < 5 refuses writes after TIME unless effects are replicated;
-- later versions always do so and keep this call as a no-op.
if redis.replicate_commands then
  redis.replicate_commands()
end
local key = KEYS[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The live in-flight buckets, oldest first, as {index, units}; deletes the
-- expired ones (crate::stock::in_flight follows the same rules).
local function live_buckets(fields, live, now_index)
  local buckets = {}
  for i = 1, #fields, 2 do
    local name = fields[i]
    if string.sub(name, 1, 2) == 'b:' then
      local index = tonumber(string.sub(name, 3))
      if now_index - index < live then
        table.insert(buckets, {index, tonumber(fields[i + 1])})
      else
        redis.call('HDEL', key, name)
      end
    end
  end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return buckets
end

local function bucket_name(index)
  return 'b:' .. string.format('%d', index)
end
