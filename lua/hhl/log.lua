-- hhl.log: structured logging for hhl instances.
--
--   local log = require "hhl.log"
--   log.info("player joined", { player = 42, room = "lobby" })
--   log.err("save failed", { player = 42, err = err })
--
-- Each call writes one line to the instance's journal stream (the worker's stderr):
--
--   [info] req=5d2c81f0a4e34b9f msg="player joined" player=42 room=lobby
--
-- with the journal priority of its level, under the instance's identifier
-- (socketserver-dev1), so it shows in `hhlctl logs`, `journalctl -u`, the web page
-- and /var/log/hhl/<developer>/<instance>.log. Levels, most severe first:
-- emerg alert crit err warn notice info debug. `log.level = "info"` drops debug.
--
-- (The original used resty.logger.socket to a syslog socket; under systemd the
-- instance's own stderr is already the journal, with no socket, buffer or timer.)

local M = {}

local PRIORITY = { emerg = 0, alert = 1, crit = 2, err = 3, warn = 4, notice = 5, info = 6, debug = 7 }

M.level = "debug"

local function value(v)
    v = tostring(v)
    if v == "" or v:find('[%s"=]') then
        return '"' .. v:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub("\n", "\\n") .. '"'
    end
    return v
end

local function request_id()
    -- Only in a request; timers and init have no ngx.var.
    local ok, id = pcall(function() return ngx.var.request_id end)
    return ok and id or nil
end

local function emit(level, msg, fields)
    if PRIORITY[level] > PRIORITY[M.level] then
        return
    end
    local parts = { "<" .. PRIORITY[level] .. ">[" .. level .. "]" }
    local id = request_id()
    if id then
        parts[#parts + 1] = "req=" .. id
    end
    parts[#parts + 1] = "msg=" .. value(msg)
    if fields then
        local keys = {}
        for k in pairs(fields) do
            keys[#keys + 1] = tostring(k)
        end
        table.sort(keys)
        for _, k in ipairs(keys) do
            parts[#parts + 1] = k .. "=" .. value(fields[k])
        end
    end
    -- One write per line, so lines from several workers never interleave.
    io.stderr:write(table.concat(parts, " ") .. "\n")
end

for level in pairs(PRIORITY) do
    M[level] = function(msg, fields)
        emit(level, msg, fields)
    end
end

return M
