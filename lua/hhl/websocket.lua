-- hhl.websocket: a WebSocket session loop that lives through deploys.
--
--   local ws = require "hhl.websocket"
--   ws.serve({ max_payload_len = 1024 * 1024, timeout = 30000 }, {
--       open = function(session) end,                  -- optional
--       message = function(session, data, typ) end,    -- every text/binary frame
--       close = function(session, code, reason) end,   -- optional, called once
--   })
--
-- `session.wb` is the resty.websocket.server object; `session:send_text(s)` and
-- `session:send_binary(s)` send frames.
--
-- Every deploy reloads nginx: old workers stop accepting and shut down. `hhl.exit`
-- wakes every session the moment the worker starts to exit; a session then finishes
-- the message in hand, sends close 1001 (going away) and ends, so clients reconnect
-- to the new code, and the old worker exits at once instead of at
-- worker_shutdown_timeout, where nginx would drop the connection without a close frame
-- (clients would see 1006). A stop or restart works the same way.
-- Idle sessions wait on a semaphore, not a polling loop: 5,000 idle sessions cost
-- nothing until a frame or the exit arrives.

local server = require "resty.websocket.server"
local semaphore = require "ngx.semaphore"
local exit = require "hhl.exit"

local M = {}

M.GOING_AWAY = 1001
M.INTERNAL_ERROR = 1011

-- Sessions open in this worker.
M.open_sessions = 0

--- True once this worker has started to shut down (reload or stop).
M.exiting = exit.exiting

--- Block the calling light thread until this worker starts to shut down.
M.wait_exit = exit.wait

local Session = {}
Session.__index = Session

function Session:send_text(s)
    return self.wb:send_text(s)
end

function Session:send_binary(s)
    return self.wb:send_binary(s)
end

-- Our close frame: after it the protocol allows no more data frames, only the
-- client's close in reply.
local function going_away(s)
    s.close_sent = true
    return s.wb:send_close(M.GOING_AWAY, "going away")
end

local function read_loop(s, handlers)
    local wb = s.wb
    local pinged = false
    while true do
        s.busy = false
        local data, typ, err = wb:recv_frame()
        s.busy = true
        if not data then
            -- Only a timeout before a frame began is idle time; one inside a frame
            -- would leave the stream out of step, so it ends the session like any error.
            if s.close_sent or not (err and err:find("first 2 bytes: timeout", 1, true)) then
                return "reader", nil, err
            end
            if pinged then
                return "reader", nil, "no pong within two read timeouts"
            end
            local ok, e = wb:send_ping()
            if not ok then
                return "reader", nil, e
            end
            pinged = true
        else
            pinged = false
            if typ == "close" then
                if s.close_sent then
                    -- The client's answer to our 1001: the close handshake is done.
                    return "reader", M.GOING_AWAY, "going away"
                end
                -- The client closes: answer with its code, as the protocol asks.
                local code = err
                wb:send_close(code ~= 1005 and code or nil)
                return "reader", code, data
            elseif s.close_sent then
                -- Sent before the client saw our close: it resends after reconnecting.
            elseif typ == "ping" then
                local ok, e = wb:send_pong(data)
                if not ok then
                    return "reader", nil, e
                end
            elseif typ ~= "pong" then
                local ok, e = pcall(handlers.message, s, data, typ)
                if not ok then
                    ngx.log(ngx.ERR, "hhl.websocket: message handler: ", e)
                    wb:send_close(M.INTERNAL_ERROR, "internal error")
                    return "reader", M.INTERNAL_ERROR, "handler failed"
                end
            end
        end
        if s.closing and not s.close_sent then
            -- The worker is exiting and this frame has been answered: now go.
            going_away(s)
        end
    end
end

local function reader_thread(s, handlers)
    local who, code, reason = read_loop(s, handlers)
    s.done:post(1)
    return who, code, reason
end

--- Accept the WebSocket handshake of the current request and run the session.
function M.serve(opts, handlers)
    opts = opts or {}
    local wb, err = server:new({
        timeout = opts.timeout or 30000,
        max_payload_len = opts.max_payload_len or 1024 * 1024,
    })
    if not wb then
        ngx.log(ngx.INFO, "hhl.websocket: handshake refused: ", err)
        return ngx.exit(ngx.HTTP_BAD_REQUEST)
    end
    -- This loop watches the worker's exit itself: the shipped resty.websocket.server
    -- need not (on OpenResty, its own module has no `unwatched`).
    if server.unwatched then
        server.unwatched(wb)
    end
    local s = setmetatable({ wb = wb, busy = false, done = semaphore.new() }, Session)
    M.open_sessions = M.open_sessions + 1
    if handlers.open then
        local ok, e = pcall(handlers.open, s)
        if not ok then
            ngx.log(ngx.ERR, "hhl.websocket: open handler: ", e)
        end
    end

    local reader = ngx.thread.spawn(reader_thread, s, handlers)
    local watcher = ngx.thread.spawn(M.wait_exit)
    local ok, who, code, reason = ngx.thread.wait(reader, watcher)
    local unfinished = false
    if not ok or who == "reader" then
        if not ok then
            ngx.log(ngx.ERR, "hhl.websocket: ", who)
        end
        -- Waiting on a semaphore only: safe to kill (a thread killed in a socket read
        -- would close the socket).
        ngx.thread.kill(watcher)
    else
        -- The worker is exiting. Mid-message, the reader answers first and then sends
        -- 1001; waiting for a frame, we send 1001 now (the reader sits in a read, so
        -- this is the only writer). Either way the reader ends on the client's close.
        if s.busy then
            s.closing = true
        else
            going_away(s)
        end
        code, reason = M.GOING_AWAY, "going away"
        unfinished = not s.done:wait(2)
    end
    M.open_sessions = M.open_sessions - 1
    if handlers.close then
        local cok, e = pcall(handlers.close, s, code, reason)
        if not cok then
            ngx.log(ngx.ERR, "hhl.websocket: close handler: ", e)
        end
    end
    if unfinished then
        -- No close from the client within 2 s: end the request (and its reader) now.
        return ngx.exit(ngx.OK)
    end
end

return M
