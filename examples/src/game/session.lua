-- One player's WebSocket session. Text frames carry JSON; every request has an `id`
-- that its answer repeats:
--   {"op":"echo","id":1,"data":...}                  -> {"op":"echo","id":1,"data":...}
--   {"op":"join","id":2,"room":"r1","player":"ann"}  -> {"op":"joined","id":2,"room":"r1","players":[...]}
--   {"op":"set","id":3,"key":"score","value":"7"}    -> {"op":"state","id":3,"state":{...}}
--   {"op":"state","id":4}                            -> {"op":"state","id":4,"state":{...}}
-- On connect the server sends {"op":"hello","instance":...,"version":...,"pid":...}.
-- A deploy or restart ends the session with close 1001 (going away): reconnect.
local cjson = require "cjson.safe"
local log = require "hhl.log"
local ws = require "hhl.websocket"
local rooms = require "game.rooms"
local version = require "game.version"

local M = {}

-- Frames up to 1 MiB (lua-resty-websocket's default is 65,535 bytes); nginx's
-- client_max_body_size is the same.
local MAX_PAYLOAD = 1024 * 1024

local function reply(s, msg)
    local ok, err = s:send_text(cjson.encode(msg))
    if not ok then
        log.warn("send failed", { err = err })
    end
end

local handlers = {}

function handlers.open(s)
    local stats = ngx.shared.hhl_stats
    if stats then
        stats:incr("sessions", 1, 0)
    end
    reply(s, {
        op = "hello",
        instance = ngx.var.hhl_instance,
        version = version,
        pid = ngx.worker.pid(),
    })
end

function handlers.message(s, data)
    local m = cjson.decode(data)
    if type(m) ~= "table" then
        return reply(s, { op = "error", error = "not a JSON object" })
    end
    local id, op = m.id, m.op
    if op == "echo" then
        return reply(s, { op = "echo", id = id, data = m.data })
    elseif op == "join" then
        if type(m.room) ~= "string" or type(m.player) ~= "string" then
            return reply(s, { op = "error", id = id, error = "join needs room and player" })
        end
        local players, err = rooms.join(m.room, m.player)
        if not players then
            log.err("join failed", { room = m.room, player = m.player, err = err })
            return reply(s, { op = "error", id = id, error = err })
        end
        s.room, s.player = m.room, m.player
        log.info("player joined", { room = m.room, player = m.player })
        return reply(s, { op = "joined", id = id, room = m.room, players = players })
    elseif op == "set" or op == "state" then
        if not s.room then
            return reply(s, { op = "error", id = id, error = "join a room first" })
        end
        local state, err
        if op == "set" then
            state, err = rooms.set(s.room, tostring(m.key), tostring(m.value))
        else
            state, err = rooms.state(s.room)
        end
        if not state then
            return reply(s, { op = "error", id = id, error = err })
        end
        return reply(s, { op = "state", id = id, state = state })
    end
    return reply(s, { op = "error", id = id, error = "unknown op: " .. tostring(op) })
end

function handlers.close(s, code)
    local stats = ngx.shared.hhl_stats
    if stats then
        stats:incr("sessions", -1, 0)
    end
    if s.room then
        rooms.leave(s.room, s.player)
        log.info("player left", { room = s.room, player = s.player, code = code or "none" })
    end
end

function M.run()
    return ws.serve({ max_payload_len = MAX_PAYLOAD, timeout = 30000 }, handlers)
end

function M.stats()
    local stats = ngx.shared.hhl_stats
    return {
        instance = ngx.var.hhl_instance,
        version = version,
        sessions = stats and stats:get("sessions") or 0,
        worker_sessions = ws.open_sessions,
    }
end

return M
