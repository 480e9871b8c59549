-- The entries of the first ARGV[1] members, best first ('' if missing).
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local entries = {}
for i, member in ipairs(members) do
  -- A member ends with the user id (after 48 hex digits of sort key).
  entries[i] = redis.call('HGET', KEYS[2], string.sub(member, 49)) or ''
end
return entries
