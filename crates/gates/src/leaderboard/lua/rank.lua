-- The 0-based rank of user ARGV[1], or -1.
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then
  return -1
end
local rank = redis.call('ZREVRANK', KEYS[1], string.match(entry, '^[^|]*'))
if not rank then
  return -1
end
return rank
