#include "scripts.h"

/* Functions shared by the scripts. A node records each thing it added to
 * the shared state as one member of its node-state set:
 *   "p\n<app>\n<channel>\n<socket_id>"  presence membership of one socket
 *   "c\n<app>\n<channel>"               the node's subscription count
 *   "k\n<app>"                          the node's connection count of the app
 *   "s\n<app>\n<user_id>\n<socket_id>"   a signed-in connection of a user
 * so that the node itself, or a survivor after it died, can undo it. */
#define LUA_PRELUDE                                                                      \
    "local function tag(app, ch) return '{' .. app .. ':' .. ch .. '}' end\n"            \
    "local function webhook(p, app, mask, fields)\n"                                     \
    "  local spec = redis.call('HGET', p .. 'webhook-apps', app)\n"                      \
    "  if not spec then return end\n"                                                    \
    "  local wanted, maxlen = string.match(spec, '^(%d+):(%d+)$')\n"                     \
    "  if not wanted or bit.band(tonumber(wanted), mask) == 0 then return end\n"         \
    "  local now = redis.call('TIME')\n"                                                 \
    "  local time_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)\n"  \
    "  redis.call('XADD', p .. 'webhooks:{' .. app .. '}', 'MAXLEN', '~', maxlen, '*',\n" \
    "    'time_ms', time_ms, unpack(fields))\n"                                          \
    "end\n"                                                                              \
    "local function publish_member_event(p, app, ch, exclude, frame)\n"                  \
    "  local t = tag(app, ch)\n"                                                         \
    "  local seq = redis.call('INCR', p .. 'seq:' .. t)\n"                               \
    "  redis.call('PUBLISH', p .. 'ch:' .. t,\n"                                         \
    "    'h1 ' .. exclude .. ' 2 ' .. seq .. '\\n' .. frame)\n"                          \
    "end\n"                                                                              \
    "local function join(p, app, ch, sid, uid, info, node, maxm)\n"                      \
    "  local t = tag(app, ch)\n"                                                         \
    "  local members, conns, sockets = p .. 'members:' .. t, p .. 'member-conns:' .. t,\n" \
    "    p .. 'sockets:' .. t\n"                                                         \
    "  if redis.call('HEXISTS', sockets, sid) == 1 then return true end\n"               \
    "  if tonumber(redis.call('HGET', conns, uid) or '0') <= 0 then\n"                   \
    "    if maxm > 0 and redis.call('HLEN', members) >= maxm then return false end\n"    \
    "    redis.call('HSET', members, uid, info)\n"                                       \
    "    redis.call('PERSIST', p .. 'seq:' .. t)\n"                                      \
    "    local data = '{\"user_id\":' .. cjson.encode(uid)\n"                            \
    "    if info ~= '' then data = data .. ',\"user_info\":' .. info end\n"              \
    "    data = data .. '}'\n"                                                           \
    "    publish_member_event(p, app, ch, sid,\n"                                        \
    "      '{\"event\":\"pusher_internal:member_added\",\"channel\":' ..\n"              \
    "      cjson.encode(ch) .. ',\"data\":' .. cjson.encode(data) .. '}')\n"             \
    "    webhook(p, app, 4, {'name', 'member_added', 'channel', ch, 'user_id', uid})\n"  \
    "  end\n"                                                                            \
    "  redis.call('HINCRBY', conns, uid, 1)\n"                                           \
    "  redis.call('HSET', sockets, sid, uid)\n"                                          \
    "  redis.call('SADD', p .. 'node-state:' .. node,\n"                                 \
    "    'p\\n' .. app .. '\\n' .. ch .. '\\n' .. sid)\n"                                \
    "  return true\n"                                                                    \
    "end\n"                                                                              \
    "local function leave(p, app, ch, sid, node, exclude)\n"                             \
    "  local t = tag(app, ch)\n"                                                         \
    "  local members, conns, sockets = p .. 'members:' .. t, p .. 'member-conns:' .. t,\n" \
    "    p .. 'sockets:' .. t\n"                                                         \
    "  redis.call('SREM', p .. 'node-state:' .. node,\n"                                 \
    "    'p\\n' .. app .. '\\n' .. ch .. '\\n' .. sid)\n"                                \
    "  local uid = redis.call('HGET', sockets, sid)\n"                                   \
    "  if not uid then return 0 end\n"                                                   \
    "  redis.call('HDEL', sockets, sid)\n"                                               \
    "  if redis.call('HINCRBY', conns, uid, -1) <= 0 then\n"                             \
    "    redis.call('HDEL', conns, uid)\n"                                               \
    "    redis.call('HDEL', members, uid)\n"                                             \
    "    publish_member_event(p, app, ch, exclude,\n"                                    \
    "      '{\"event\":\"pusher_internal:member_removed\",\"channel\":' ..\n"            \
    "      cjson.encode(ch) .. ',\"data\":' ..\n"                                        \
    "      cjson.encode('{\"user_id\":' .. cjson.encode(uid) .. '}') .. '}')\n"          \
    "    webhook(p, app, 8, {'name', 'member_removed', 'channel', ch, 'user_id', uid})\n" \
    "    if redis.call('HLEN', members) == 0 then\n"                                     \
    "      redis.call('PEXPIRE', p .. 'seq:' .. t, 86400000)\n"                          \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  return 1\n"                                                                       \
    "end\n"                                                                              \
    "local function set_count(p, app, ch, node, count)\n"                                \
    "  local t = tag(app, ch)\n"                                                         \
    "  local subs, occupied = p .. 'subs:' .. t, p .. 'channels:{' .. app .. '}'\n"      \
    "  local entry = 'c\\n' .. app .. '\\n' .. ch\n"                                     \
    "  if count > 0 then\n"                                                              \
    "    local was_empty = redis.call('HLEN', subs) == 0\n"                              \
    "    redis.call('HSET', subs, node, count)\n"                                        \
    "    redis.call('SADD', occupied, ch)\n"                                             \
    "    redis.call('SADD', p .. 'node-state:' .. node, entry)\n"                        \
    "    if was_empty then\n"                                                            \
    "      webhook(p, app, 1, {'name', 'channel_occupied', 'channel', ch})\n"            \
    "    end\n"                                                                          \
    "  else\n"                                                                           \
    "    local removed = redis.call('HDEL', subs, node)\n"                               \
    "    redis.call('SREM', p .. 'node-state:' .. node, entry)\n"                        \
    "    if redis.call('HLEN', subs) == 0 then\n"                                        \
    "      redis.call('SREM', occupied, ch)\n"                                           \
    "      if removed == 1 then\n"                                                       \
    "        webhook(p, app, 2, {'name', 'channel_vacated', 'channel', ch})\n"           \
    "      end\n"                                                                        \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "end\n"                                                                              \
    "local function split(entry)\n"                                                      \
    "  local parts = {}\n"                                                               \
    "  for part in string.gmatch(entry, '([^\\n]*)\\n?') do parts[#parts + 1] = part end\n" \
    "  return parts\n"                                                                   \
    "end\n"                                                                              \
    "local function publish_watch(p, app, uid, name)\n"                                  \
    "  local data = '{\"events\":[{\"name\":\"' .. name .. '\",\"user_ids\":[' ..\n"       \
    "    cjson.encode(uid) .. ']}]}'\n"                                                  \
    "  redis.call('PUBLISH', p .. 'ch:' .. tag(app, '#watchlist-' .. uid),\n"            \
    "    'h1 - 0\\n{\"event\":\"pusher_internal:watchlist_events\",\"data\":' ..\n"        \
    "    cjson.encode(data) .. '}')\n"                                                   \
    "end\n"                                                                              \
    "local function user_online(p, app, uid, sid, node)\n"                               \
    "  local entry = 's\\n' .. app .. '\\n' .. uid .. '\\n' .. sid\n"                      \
    "  if redis.call('SADD', p .. 'node-state:' .. node, entry) == 1 and\n"             \
    "     redis.call('HINCRBY', p .. 'online:{' .. app .. '}', uid, 1) == 1 then\n"      \
    "    publish_watch(p, app, uid, 'online')\n"                                        \
    "  end\n"                                                                            \
    "end\n"                                                                              \
    "local function user_offline(p, app, uid, sid, node)\n"                              \
    "  local entry = 's\\n' .. app .. '\\n' .. uid .. '\\n' .. sid\n"                      \
    "  if redis.call('SREM', p .. 'node-state:' .. node, entry) == 0 then return end\n"  \
    "  local key = p .. 'online:{' .. app .. '}'\n"                                      \
    "  if redis.call('HINCRBY', key, uid, -1) <= 0 then\n"                               \
    "    redis.call('HDEL', key, uid)\n"                                                 \
    "    publish_watch(p, app, uid, 'offline')\n"                                       \
    "  end\n"                                                                            \
    "end\n"                                                                              \
    "local function undo_entry(p, node, entry)\n"                                        \
    "  local e = split(entry)\n"                                                         \
    "  if e[1] == 'p' then leave(p, e[2], e[3], e[4], node, '-')\n"                      \
    "  elseif e[1] == 's' then user_offline(p, e[2], e[3], e[4], node)\n"                \
    "  elseif e[1] == 'c' then set_count(p, e[2], e[3], node, 0)\n"                      \
    "  elseif e[1] == 'k' then redis.call('HDEL', p .. 'conns:{' .. e[2] .. '}', node) end\n" \
    "end\n"

const char scripts_presence_join[] =
    LUA_PRELUDE
    "local p, app, ch, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "if not join(p, app, ch, sid, ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])) then\n"
    "  return {'full'}\n"
    "end\n"
    "local t = tag(app, ch)\n"
    "return {'ok', redis.call('GET', p .. 'seq:' .. t) or '0',\n"
    "  redis.call('HGETALL', p .. 'members:' .. t)}\n";

const char scripts_presence_leave[] =
    LUA_PRELUDE
    "return leave(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[4])\n";

const char scripts_channel_count[] =
    LUA_PRELUDE
    "local p, app, ch, interval = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[6] or '0')\n"
    "set_count(p, app, ch, ARGV[4], tonumber(ARGV[5]))\n"
    "if interval <= 0 then return 0 end\n"
    "local t = tag(app, ch)\n"
    "local total = 0\n"
    "for _, value in ipairs(redis.call('HVALS', p .. 'subs:' .. t)) do\n"
    "  total = total + tonumber(value)\n"
    "end\n"
    "if redis.call('GET', p .. 'subcount-sent:' .. t) == tostring(total) then return 0 end\n"
    "if not redis.call('SET', p .. 'subcount-lock:' .. t, '1', 'NX', 'PX', interval) then\n"
    "  return math.max(redis.call('PTTL', p .. 'subcount-lock:' .. t), 1)\n"
    "end\n"
    "redis.call('SET', p .. 'subcount-sent:' .. t, tostring(total), 'PX', 86400000)\n"
    "if total > 0 then\n"
    "  local data = '{\"subscription_count\":' .. total .. '}'\n"
    "  redis.call('PUBLISH', p .. 'ch:' .. t, 'h1 - 0\\n' ..\n"
    "    '{\"event\":\"pusher_internal:subscription_count\",\"channel\":' ..\n"
    "    cjson.encode(ch) .. ',\"data\":' .. cjson.encode(data) .. '}')\n"
    "  webhook(p, app, 64, {'name', 'subscription_count', 'channel', ch,\n"
    "    'subscription_count', tostring(total)})\n"
    "end\n"
    "return 0\n";

const char scripts_node_sync[] =
    LUA_PRELUDE
    "local p, node = ARGV[1], ARGV[2]\n"
    "redis.call('SET', p .. 'node:' .. node, '1', 'PX', ARGV[3])\n"
    "redis.call('SADD', p .. 'nodes', node)\n"
    "local wanted, entries, i = {}, {}, 4\n"
    "while i <= #ARGV do\n"
    "  if ARGV[i] == 'p' then\n"
    "    local e = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]}\n"
    "    wanted['p\\n' .. e[2] .. '\\n' .. e[3] .. '\\n' .. e[4]] = true\n"
    "    entries[#entries + 1] = e\n"
    "    i = i + 6\n"
    "  elseif ARGV[i] == 's' then\n"
    "    local e = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]}\n"
    "    wanted['s\\n' .. e[2] .. '\\n' .. e[3] .. '\\n' .. e[4]] = true\n"
    "    entries[#entries + 1] = e\n"
    "    i = i + 4\n"
    "  else\n"
    "    local e = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]}\n"
    "    wanted['c\\n' .. e[2] .. '\\n' .. e[3]] = true\n"
    "    entries[#entries + 1] = e\n"
    "    i = i + 4\n"
    "  end\n"
    "end\n"
    "for _, entry in ipairs(redis.call('SMEMBERS', p .. 'node-state:' .. node)) do\n"
    "  if not wanted[entry] and string.sub(entry, 1, 2) ~= 'k\\n' then\n"
    "    undo_entry(p, node, entry)\n"
    "  end\n"
    "end\n"
    "for _, e in ipairs(entries) do\n"
    "  if e[1] == 'p' then join(p, e[2], e[3], e[4], e[5], e[6], node, 0)\n"
    "  elseif e[1] == 's' then user_online(p, e[2], e[3], e[4], node)\n"
    "  else set_count(p, e[2], e[3], node, tonumber(e[4])) end\n"
    "end\n"
    "return #entries\n";

const char scripts_node_reap[] =
    LUA_PRELUDE
    "local p, self = ARGV[1], ARGV[2]\n"
    "local reaped = {}\n"
    "for _, node in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do\n"
    "  if node ~= self and redis.call('EXISTS', p .. 'node:' .. node) == 0 then\n"
    "    for _, entry in ipairs(redis.call('SMEMBERS', p .. 'node-state:' .. node)) do\n"
    "      undo_entry(p, node, entry)\n"
    "    end\n"
    "    redis.call('DEL', p .. 'node-state:' .. node)\n"
    "    redis.call('SREM', p .. 'nodes', node)\n"
    "    reaped[#reaped + 1] = node\n"
    "  end\n"
    "end\n"
    "return reaped\n";

const char scripts_app_connections[] =
    LUA_PRELUDE
    "local p, node = ARGV[1], ARGV[2]\n"
    "local totals = {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local app, count = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  local key, entry = p .. 'conns:{' .. app .. '}', 'k\\n' .. app\n"
    "  if count > 0 then\n"
    "    redis.call('HSET', key, node, count)\n"
    "    redis.call('SADD', p .. 'node-state:' .. node, entry)\n"
    "  else\n"
    "    redis.call('HDEL', key, node)\n"
    "    redis.call('SREM', p .. 'node-state:' .. node, entry)\n"
    "  end\n"
    "  local total = 0\n"
    "  for _, value in ipairs(redis.call('HVALS', key)) do total = total + tonumber(value) end\n"
    "  totals[#totals + 1] = total\n"
    "end\n"
    "return totals\n";

const char scripts_user_online[] =
    LUA_PRELUDE
    "local p, app = ARGV[1], ARGV[2]\n"
    "user_online(p, app, ARGV[3], ARGV[4], ARGV[5])\n"
    "local key, online = p .. 'online:{' .. app .. '}', {}\n"
    "for i = 6, #ARGV do online[#online + 1] = redis.call('HEXISTS', key, ARGV[i]) end\n"
    "return online\n";

const char scripts_user_offline[] =
    LUA_PRELUDE
    "user_offline(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])\n"
    "return 1\n";
