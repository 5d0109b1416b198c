//! The Lua scripts that make each ownership step one atomic Redis step.

/// Writes a room change and publishes it, if this server still owns the
/// room. KEYS: owner, room record, room set. ARGV: node, record, room key,
/// overview channel, message.
pub const COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1";

/// Claims a new room key. KEYS: owner, room record, node rooms.
/// ARGV: node, room key.
pub const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1";

/// Takes a room over from a dead (or no) owner. KEYS: owner, room record,
/// old owner's rooms, new owner's rooms. ARGV: old owner ('' for none),
/// node, room key.
pub const TAKE_OVER: &str = r"
local current = redis.call('GET', KEYS[1]) or ''
if ARGV[1] ~= '' then redis.call('SREM', KEYS[3], ARGV[3]) end
if current ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
return 1";

/// Gives up a deleted room. KEYS: owner, node rooms, presence.
/// ARGV: node, room key.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return 1";

/// The field of a room's chat hash that holds its newest message id.
pub const LAST_CHAT_FIELD: &str = "last";

/// Saves a chat message, keeps the newest id in `last` and removes the
/// message that fell out of the kept window; with a receipt, stores it in
/// the same step, unless one is kept under its key: then writes nothing
/// and returns that one. KEYS: chat hash[, receipt]. ARGV: id, message,
/// how many to keep[, receipt, its TTL in seconds].
pub const SAVE_CHAT: &str = r"
if KEYS[2] and not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[5]) then
  return redis.call('GET', KEYS[2])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local id = tonumber(ARGV[1])
if id > tonumber(redis.call('HGET', KEYS[1], 'last') or '0') then redis.call('HSET', KEYS[1], 'last', ARGV[1]) end
local gone = id - tonumber(ARGV[3])
if gone >= 1 then redis.call('HDEL', KEYS[1], tostring(gone)) end
return false";

/// Appends frames and saves the room record; with a receipt, stores it in
/// the same step, unless one is kept under its key: then writes nothing
/// and returns that one. KEYS: frames list, room record[, receipt]. ARGV:
/// room record, receipt (or empty), its TTL in seconds, frames...
pub const APPEND_FRAMES: &str = r"
if KEYS[3] and not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[3]) then
  return redis.call('GET', KEYS[3])
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
redis.call('SET', KEYS[2], ARGV[1])
return false";

/// Frees a shared lock if it is still ours. KEYS: lock. ARGV: token.
pub const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Renews a shared lock's lease if it is still ours. KEYS: lock. ARGV:
/// token, lease in milliseconds.
pub const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";
