-- Records standings, each replacing the user's earlier one (a standing
-- placed before the one held is ignored: a late message cannot undo a
-- newer bid).
-- KEYS[1] the sorted set (member -> score), KEYS[2] the hash (user -> entry;
--   '~' marks a loaded board). An entry is "member|bid|score bits|time|username".
-- ARGV[1] '1' marks the board loaded (load), '0' records
-- ARGV[2] TTL (ms) of both keys
-- ARGV[3..] groups of (user, member, score, entry)
-- Returns the 0-based rank of the last member recorded, or -1.
local z, h = KEYS[1], KEYS[2]
if ARGV[1] == '1' then
  redis.call('HSET', h, '~', '1')
end
local function placed_at(entry)
  return tonumber(string.match(entry, '^[^|]*|[^|]*|[^|]*|([^|]*)'))
end
local last = nil
for i = 3, #ARGV, 4 do
  local user, member = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', h, user)
  if old and placed_at(old) > placed_at(ARGV[i + 3]) then
    last = string.match(old, '^[^|]*')
  else
    if old then
      redis.call('ZREM', z, string.match(old, '^[^|]*'))
    end
    redis.call('ZADD', z, ARGV[i + 2], member)
    redis.call('HSET', h, user, ARGV[i + 3])
    last = member
  end
end
redis.call('PEXPIRE', z, ARGV[2])
redis.call('PEXPIRE', h, ARGV[2])
if last then
  return redis.call('ZREVRANK', z, last)
end
return -1
