-- OpenResty's module name for Debian's lua-resty-websocket (package lua-nginx-websocket),
-- with one addition: sessions end promptly when the worker exits.
-- hhlctl puts this directory after nginx's default path: on OpenResty the real
-- resty.websocket.server is found first and this file is never read.
--
-- Plain session code (`local wb = server:new(opts)` then a `wb:recv_frame()` loop)
-- does not watch for the worker's exit: each open session would hold an old worker
-- until worker_shutdown_timeout after every deploy, and a restart would wait as long.
-- Here, while a session waits in recv_frame, a light thread waits for the exit
-- (`hhl.exit`); when it comes, it sends close 1001 (going away), as hhl.websocket does.
-- The client's close in reply ends recv_frame with typ "close", as when the client
-- leaves, so the game's loop ends its session; frames the client sent before it saw
-- our close are not handed over (it resends them after reconnecting), and sends after
-- it are refused. A client that does not answer within 2 s is cut off. A message in
-- hand is not interrupted: the close goes out at the next recv_frame.

local real = require "nginx.websocket.server"
local exit = require "hhl.exit"

local M = setmetatable({}, { __index = real })

M.GOING_AWAY = 1001
-- How long a client has to answer our close before its connection is ended.
M.CLOSE_WAIT = 2

local raw_recv = real.recv_frame
local raw_close = real.send_close
local AWAY = "going away: the worker is exiting"

-- The light thread of one recv_frame: on exit, send 1001 and give the client
-- CLOSE_WAIT seconds to answer before ending the request.
local function watch(wb)
    exit.wait()
    wb.hhl_away = true
    raw_close(wb, M.GOING_AWAY, "going away")
    ngx.sleep(M.CLOSE_WAIT)
    ngx.log(ngx.INFO, "websocket: no close from the client within ", M.CLOSE_WAIT, " s after 1001; ending it")
    return ngx.exit(ngx.OK)
end

local function recv_frame(wb)
    if wb.hhl_away and wb.hhl_closed then
        return nil, nil, AWAY
    end
    -- Spawned by the caller's thread, so that thread can kill it: it waits on a
    -- semaphore or sleeps, never in socket I/O, when it is killed.
    local watcher = ngx.thread.spawn(watch, wb)
    while true do
        local data, typ, err = raw_recv(wb)
        if not wb.hhl_away or not data or typ == "close" then
            if wb.hhl_away then
                wb.hhl_closed = true
            end
            ngx.thread.kill(watcher)
            return data, typ, err
        end
        -- A frame sent before the client saw our close: it resends after reconnecting.
    end
end

local function refusing(name)
    local raw = real[name]
    return function(wb, ...)
        if wb.hhl_away then
            return nil, AWAY
        end
        return raw(wb, ...)
    end
end

local sends = {}
for _, name in ipairs({ "send_text", "send_binary", "send_ping", "send_pong", "send_close", "send_frame" }) do
    sends[name] = refusing(name)
end

function M.new(self, opts)
    local wb, err = real.new(real, opts)
    if not wb then
        return nil, err
    end
    wb.recv_frame = recv_frame
    for name, f in pairs(sends) do
        wb[name] = f
    end
    return wb
end

--- For session loops that watch the worker's exit themselves (hhl.websocket): the
--- plain methods back on `wb`.
function M.unwatched(wb)
    wb.recv_frame = nil
    for name in pairs(sends) do
        wb[name] = nil
    end
    return wb
end

return M
